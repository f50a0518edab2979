"""The brains' pure parts: excerpts of a passage, answer pieces, tool-call fragments, endpoint names."""

from __future__ import annotations

from types import SimpleNamespace as NS

from palaver.service.brains.base import ToolCall
from palaver.service.brains.knowledge import excerpt, sentences
from palaver.service.brains.llm import LlmEndpoint, _ToolCalls
from palaver.service.brains.offline import pieces


def fragment(index: int | None = None, id: str | None = None, name: str | None = None, args: str | None = None) -> NS:
    return NS(index=index, id=id, function=NS(name=name, arguments=args))


def test_excerpt_starts_at_the_best_sentence_and_keeps_what_fits() -> None:
    text = "Intro line here. Our office opens at nine. It closes at five! Parking is free.\nUnrelated trivia."
    assert sentences(text)[-1] == "Unrelated trivia."
    got = excerpt(text, "When does the office open?", max_chars=200, context_chars=10)
    assert got.text == "Our office opens at nine." and got.relevance == 2
    wider = excerpt(text, "When does the office open?", max_chars=200, context_chars=60)
    assert wider.text == "Our office opens at nine. It closes at five! Parking is free."  # context up to 60 chars
    assert excerpt(text, "the is at", max_chars=200).relevance > 0  # only stop words: they are all there is
    assert excerpt(text, "zebra", max_chars=200).relevance == 0


def test_a_long_sentence_is_cut_at_a_word_with_an_ellipsis() -> None:
    text = "The warranty " + "covers everything " * 40 + "forever."
    got = excerpt(text, "warranty", max_chars=60)
    assert got.text.endswith("…") and len(got.text) <= 60 and got.text.startswith("The warranty covers")
    assert " " not in got.text[-2:]


def test_pieces_join_back_to_the_answer() -> None:
    for text in ['From "FAQ": one two three four five six seven.', "  lead", "single", "a\n\nb  c "]:
        assert "".join(pieces(text)) == text
    assert len(pieces("one two three four five six seven eight nine")) == 3
    assert pieces("") == []


def test_tool_call_fragments_are_put_together() -> None:
    calls = _ToolCalls()
    assert calls.add(fragment(0, "call_a", "lookup", '{"q": ')) == []
    assert calls.add(fragment(0, None, None, '"x"}')) == []
    assert calls.add(fragment(1, "call_b", "other", "")) == [ToolCall("call_a", "lookup", '{"q": "x"}')]
    assert calls.flush() == [ToolCall("call_b", "other", "{}")]  # no arguments: an empty object


def test_servers_that_repeat_or_omit_fields_are_understood() -> None:
    calls = _ToolCalls()
    calls.add(fragment(None, "call_1", "say", '{"t":'))  # no index: the first call
    calls.add(fragment(None, "call_1", "say", '"hi"}'))  # name and id repeated
    assert calls.add(fragment(3, None, None, "{}")) == [ToolCall("call_1", "say", '{"t":"hi"}')]
    assert calls.flush() == []  # a call without a name: nothing the room could run
    single = _ToolCalls()
    single.add(fragment(0, None, "ping", "{}"))
    (call,) = single.flush()
    assert call.name == "ping" and call.tool_call_id.startswith("call_") and len(call.tool_call_id) > 10


def test_the_endpoint_host_is_shown_without_credentials() -> None:
    assert LlmEndpoint("https://user:pw@llm.example/v1", "m").host == "llm.example"
    assert LlmEndpoint("http://127.0.0.1:9123/v1", "m").host == "127.0.0.1:9123"
    assert LlmEndpoint("http://[::1]:8080/v1", "m").host == "[::1]:8080"
