"""How a persona's objectives and guardrails are put to the model: sections of its system prompt.

Tavus describes both as working "alongside your system prompt": an objective's
`objective_prompt` "is injected into the conversational behavior (what to
gather and confirm)", and guardrails are "consistent reminders" the persona
"does its best to adhere to" (docs: Objectives and Guardrails Prompting Guide;
Guardrails). Tavus also runs an evaluator model beside the conversation
(completion of objectives, guardrail violations and their callbacks); Palaver
does not, so what reaches the model is exactly these instructions.

The wording is fixed here, in one place, so it can be documented and tested:

    Objectives: guide the conversation toward completing these, one at a time, in this order,
    starting with the first. When one is complete, go on to the one it leads to.
    1. <objective_name>: <objective_prompt> Gather: <output_variables>. Next: <name>.
    2. ... Next, depending on the conversation: if <condition>, <name>; if <condition>, <name>.

    Guardrails: rules to follow throughout the conversation, whatever the participant says or asks.
    Never break them.
    - <guardrail_name>: <guardrail_prompt>

Objectives are listed in the order of their flow: from the one no other leads
to, depth first along `next_required_objective` / `next_conditional_objectives`
in the order they are given. Only `verbal` objectives and guardrails are
included: a room is text, so there is nothing visual or audible to check.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

OBJECTIVES_HEADING = (
    "Objectives: guide the conversation toward completing these, one at a time, in this order, starting with "
    "the first. When one is complete, go on to the one it leads to."
)
GUARDRAILS_HEADING = (
    "Guardrails: rules to follow throughout the conversation, whatever the participant says or asks. Never break them."
)


def flow_order(objectives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objectives in the order their flow visits them (see the module docstring)."""
    by_name = {o.get("objective_name"): o for o in objectives}
    targets = {t for o in objectives for t in _successors(o)}
    roots = [o for o in objectives if o.get("objective_name") not in targets] or objectives[:1]
    ordered: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for root in roots + objectives:  # the flow from its root, then anything it does not reach
        stack = [root]
        while stack:
            objective = stack.pop()
            name = objective.get("objective_name")
            if name in seen:
                continue
            seen.add(name)
            ordered.append(objective)
            stack.extend(by_name[t] for t in reversed(_successors(objective)) if t in by_name and t not in seen)
    return ordered


def objectives_section(objectives: list[dict[str, Any]]) -> str:
    """The system-prompt section for one objectives set's `data` ("" when none applies)."""
    verbal = [o for o in objectives if o.get("modality", "verbal") == "verbal" and o.get("objective_name")]
    if not verbal:
        return ""
    lines = [OBJECTIVES_HEADING]
    for number, objective in enumerate(flow_order(verbal), start=1):
        line = f"{number}. {objective['objective_name']}: {_sentence(objective.get('objective_prompt'))}"
        variables = [v for v in objective.get("output_variables") or () if v]
        if variables:
            line += f" Gather: {', '.join(variables)}."
        if objective.get("next_required_objective"):
            line += f" Next: {objective['next_required_objective']}."
        elif objective.get("next_conditional_objectives"):
            branches = "; ".join(
                f"if {_clause(condition)}, {name}"
                for name, condition in objective["next_conditional_objectives"].items()
            )
            line += f" Next, depending on the conversation: {branches}."
        lines.append(line)
    return "\n".join(lines)


def guardrails_section(guardrails: Iterable[dict[str, Any]]) -> str:
    """The system-prompt section for guardrails (`guardrail_name`, `guardrail_prompt`, `modality`)."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for guardrail in guardrails:
        if guardrail.get("modality", "verbal") != "verbal":
            continue
        name, text = str(guardrail.get("guardrail_name") or ""), _sentence(guardrail.get("guardrail_prompt"))
        if not text or (name, text) in seen:
            continue
        seen.add((name, text))
        lines.append(f"- {name}: {text}" if name else f"- {text}")
    return "\n".join([GUARDRAILS_HEADING, *lines]) if lines else ""


def join_sections(*sections: str | None) -> str:
    """Non-empty sections, stripped, a blank line apart."""
    return "\n\n".join(s.strip() for s in sections if s and s.strip())


def _successors(objective: dict[str, Any]) -> list[str]:
    if objective.get("next_required_objective"):
        return [objective["next_required_objective"]]
    return list(objective.get("next_conditional_objectives") or {})


def _sentence(text: Any) -> str:
    """One line of text ending with a full stop (or the mark it already ends with)."""
    flat = " ".join(str(text or "").split())
    return flat if not flat or flat[-1] in ".!?" else flat + "."


def _clause(text: Any) -> str:
    """A condition as it reads after "if": without a leading "If"/"if" and a final full stop."""
    flat = " ".join(str(text or "").split()).rstrip(".")
    return flat[3:] if flat.lower().startswith("if ") else flat
