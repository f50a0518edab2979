"""The flow an objectives set forms: references, one first objective, reachability, cycles."""

from __future__ import annotations

import pytest

from palaver.domain.objectives import Objective, check_set, find_cycle, flow_problems, parse_set


def objective(name: str, nxt: str | None = None, conditional: dict[str, str] | None = None) -> Objective:
    return Objective(objective_name=name, objective_prompt="p", next_required_objective=nxt,
                     next_conditional_objectives=conditional)  # fmt: skip


def test_a_straight_flow_is_fine() -> None:
    assert flow_problems([objective("a", "b"), objective("b", "c"), objective("c")], allow_loops=False) == []


def test_a_single_objective_is_its_own_flow() -> None:
    assert flow_problems([objective("a")], allow_loops=False) == []


def test_branches_that_join_again_are_not_a_cycle() -> None:
    objectives = [objective("a", conditional={"b": "x", "c": "y"}), objective("b", "d"), objective("c", "d"),
                  objective("d")]  # fmt: skip
    assert flow_problems(objectives, allow_loops=False) == []


def test_two_first_objectives_are_refused() -> None:
    problems = flow_problems([objective("a", "c"), objective("b", "c"), objective("c")], allow_loops=False)
    assert problems == ["the flow must have a single first objective; these have none before them: a, b"]


def test_unknown_and_self_references() -> None:
    problems = flow_problems([objective("a", "a"), objective("b", conditional={"zz": "x"})], allow_loops=False)
    assert problems == ["a: an objective cannot be its own next objective", "b: next objective 'zz' is not in this set"]


def test_both_kinds_of_next_are_refused() -> None:
    problems = flow_problems([objective("a", "b", {"b": "x"}), objective("b")], allow_loops=False)
    assert problems == ["a: set next_required_objective or next_conditional_objectives, not both"]


def test_duplicate_names() -> None:
    assert flow_problems([objective("a"), objective("a")], allow_loops=False) == [
        "objective_name 'a' is used more than once"
    ]


def test_a_loop_back_is_refused_unless_allowed() -> None:
    objectives = [objective("a", "b"), objective("b", "c"), objective("c", "b")]
    assert flow_problems(objectives, allow_loops=False) == ["the flow loops (b -> c -> b); set allow_loops to allow it"]
    assert flow_problems(objectives, allow_loops=True) == []


def test_a_full_circle_has_no_first_objective() -> None:
    objectives = [objective("a", "b"), objective("b", "a")]
    problems = flow_problems(objectives, allow_loops=False)
    assert problems[0] == "every objective has one before it: the flow has no first objective"
    assert flow_problems(objectives, allow_loops=True) == []  # starts at the first listed


def test_an_island_loop_is_unreachable_even_with_loops_allowed() -> None:
    objectives = [objective("a"), objective("b", "c"), objective("c", "b")]
    assert flow_problems(objectives, allow_loops=True) == ["not reachable from the first objective 'a': b, c"]


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": ["b"], "b": []}, None),
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, None),
        ({"a": ["b"], "b": ["c"], "c": ["d"], "d": ["b"]}, ["b", "c", "d", "b"]),
    ],
)
def test_find_cycle(edges, cycle) -> None:
    assert find_cycle(list(edges), edges) == cycle


def test_find_cycle_on_a_long_chain_does_not_recurse() -> None:
    names = [f"o{i}" for i in range(5000)]
    edges = {n: [names[i + 1]] for i, n in enumerate(names[:-1])}
    edges[names[-1]] = [names[0]]
    assert find_cycle(names, edges)[-1] == "o0"


def test_parse_set_reports_the_missing_name_first() -> None:
    assert parse_set({"data": [{"objective_prompt": "x", "modality": "nope"}]}) == "objective_name is required"
    assert parse_set({"data": "x"}) == "data is required: a list of 1 to 50 objectives"


def test_check_set_fills_defaults_and_normalises_empty_next() -> None:
    item = {"objective_name": "a", "objective_prompt": "p", "next_required_objective": "",
            "next_conditional_objectives": {}}  # fmt: skip
    fields, problems = check_set({"data": [item]})
    assert problems == [] and fields is not None
    assert fields["name"] == "" and fields["allow_loops"] is False
    assert fields["data"][0]["next_required_objective"] is None
    assert fields["data"][0]["next_conditional_objectives"] is None
    assert fields["data"][0]["confirmation_mode"] == "auto" and fields["data"][0]["modality"] == "verbal"
