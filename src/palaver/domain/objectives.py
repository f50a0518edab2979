"""Objectives sets: the rules one set obeys, and the flow its objectives form.

An objectives set is `{name, data: [objective, ...], allow_loops}`. Each
objective may name what comes after it, either one `next_required_objective`
or a map `next_conditional_objectives` (name -> condition), never both. The
names form a directed graph the conversation walks from its root, so the server
checks what the SDK does not (reference 8; SDK surface, Objectives): every
name points inside the set and never at itself, exactly one objective starts
the flow, every objective can be reached from it, and, unless `allow_loops`,
the flow has no cycle.

The stored document is complete (every field present, `null` when unset), so
an RFC 6902 `replace` on `/data/0/callback_url` works on a set created without it.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_OBJECTIVES = 50
MAX_NAME = 100
NAME_PATTERN = r"^[a-zA-Z0-9_]+$"
# The server's own fields: a create cannot set them, a patch cannot change them.
READ_ONLY = frozenset({"objectives_id", "uuid", "status", "created_at", "updated_at"})


def new_objectives_id() -> str:
    return "o" + secrets.token_hex(6)


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    objective_name: str = Field(max_length=MAX_NAME, pattern=NAME_PATTERN)
    objective_prompt: str = Field(max_length=10_000)
    confirmation_mode: Literal["auto", "manual"] = "auto"
    output_variables: list[str] = Field(default_factory=list, max_length=50)
    modality: Literal["verbal", "visual"] = "verbal"
    next_required_objective: str | None = Field(None, max_length=MAX_NAME)
    next_conditional_objectives: dict[str, str] | None = Field(None, max_length=MAX_OBJECTIVES)
    callback_url: str = Field("", max_length=2048)
    tool_call: dict[str, Any] | None = None

    @field_validator("output_variables")
    @classmethod
    def _variables(cls, items: list[str]) -> list[str]:
        if any(not item or len(item) > 256 for item in items):
            raise ValueError("output variables must be non-empty strings of at most 256 characters")
        return items

    @field_validator("next_conditional_objectives")
    @classmethod
    def _conditions(cls, conditions: dict[str, str] | None) -> dict[str, str] | None:
        if conditions and any(len(text) > 10_000 for text in conditions.values()):
            raise ValueError("a condition must be at most 10000 characters")
        return conditions or None  # `{}` names nothing: the same as unset

    @field_validator("next_required_objective")
    @classmethod
    def _required(cls, name: str | None) -> str | None:
        return name or None  # `""` names nothing: the same as unset

    def successors(self) -> list[str]:
        if self.next_required_objective:
            return [self.next_required_objective]
        return list(self.next_conditional_objectives or {})


class ObjectivesSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("", max_length=MAX_NAME)
    data: list[Objective] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    allow_loops: bool = False


def first_problem(exc: ValidationError) -> str:
    """One sentence for the first thing Pydantic refused: `x is required` for a missing field
    (the text Tavus answers, reference 1.2), else `where: what`."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "missing" and loc:
        return f"{loc[-1]} is required"
    text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        text = "unknown field"
    return f"{'.'.join(loc)}: {text}" if loc else text


def parse_set(body: dict[str, Any]) -> ObjectivesSet | str:
    """The set, or the first reason it is not one (field rules only; see `flow_problems`)."""
    if not isinstance(body.get("data"), list) or not body["data"]:
        return "data is required: a list of 1 to 50 objectives"
    for item in body["data"]:
        if isinstance(item, dict) and not item.get("objective_name"):
            return "objective_name is required"  # the text clients look for, before any other rule
    try:
        return ObjectivesSet.model_validate(body)
    except ValidationError as exc:
        return first_problem(exc)


def flow_problems(objectives: list[Objective], *, allow_loops: bool) -> list[str]:
    """Every reason the objectives do not form one flow (empty when they do), in a stable order."""
    problems: list[str] = []
    names = [o.objective_name for o in objectives]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"objective_name {name!r} is used more than once")
        seen.add(name)
    edges: dict[str, list[str]] = {}
    for objective in objectives:
        name = objective.objective_name
        if objective.next_required_objective and objective.next_conditional_objectives:
            problems.append(f"{name}: set next_required_objective or next_conditional_objectives, not both")
        for target in objective.successors():
            if target == name:
                problems.append(f"{name}: an objective cannot be its own next objective")
            elif target not in seen:
                problems.append(f"{name}: next objective {target!r} is not in this set")
        edges.setdefault(name, []).extend(t for t in objective.successors() if t in seen and t != name)
    if problems:
        return problems  # the graph is not well defined: its shape cannot be judged
    targets = {t for ts in edges.values() for t in ts}
    roots = [n for n in names if n not in targets]
    if len(roots) > 1:
        problems.append(f"the flow must have a single first objective; these have none before them: {', '.join(roots)}")
    elif not roots and not allow_loops:
        problems.append("every objective has one before it: the flow has no first objective")
    cycle = find_cycle(names, edges)
    if cycle and not allow_loops:
        problems.append(f"the flow loops ({' -> '.join(cycle)}); set allow_loops to allow it")
    if len(roots) <= 1:
        start = roots[0] if roots else names[0]
        unreachable = [n for n in names if n not in reachable(start, edges)]
        if unreachable:
            problems.append(f"not reachable from the first objective {start!r}: {', '.join(unreachable)}")
    return problems


def reachable(start: str, edges: dict[str, list[str]]) -> set[str]:
    found = {start}
    stack = [start]
    while stack:
        for target in edges.get(stack.pop(), ()):
            if target not in found:
                found.add(target)
                stack.append(target)
    return found


def find_cycle(names: list[str], edges: dict[str, list[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in names:
        if root in state:
            continue
        path = [root]
        iterators = [iter(edges.get(root, ()))]
        state[root] = 1
        while iterators:
            target = next(iterators[-1], None)
            if target is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(target) == 1:
                return [*path[path.index(target) :], target]
            elif target not in state:
                state[target] = 1
                path.append(target)
                iterators.append(iter(edges.get(target, ())))
    return None


def check_set(body: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The set's complete fields (`name`, `data`, `allow_loops`) and the reasons it is refused:
    exactly one of the two is meaningful (fields when the list is empty)."""
    parsed = parse_set(body)
    if isinstance(parsed, str):
        return None, [parsed]
    problems = flow_problems(parsed.data, allow_loops=parsed.allow_loops)
    if problems:
        return None, problems
    return parsed.model_dump(), []
