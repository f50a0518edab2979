"""The replica brain: what answers a participant, behind one small interface.

A room asks its brain for the replica's next answer and streams what comes back
into Interactions Protocol messages. The brain is stateless: each call gets the
whole prompt (the system message, the conversation so far, the tool results),
so a brain can be swapped, and a room taken over by another process, without
losing anything. Brains: echo (says nothing of its own: the replica speaks only
what `conversation.echo` carries), an OpenAI-compatible LLM, and the offline
brain that answers from the persona's documents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Prompt:
    """Everything a brain may use for one answer."""

    account_id: str
    conversation_id: str
    # OpenAI chat-completions messages: the system message first, then the
    # conversation so far (user / assistant, assistant tool calls and `tool` results).
    messages: list[dict[str, Any]]
    # The persona's tools, in the chat-completions `tools` format.
    tools: list[dict[str, Any]] = field(default_factory=list)
    # The knowledge the conversation may draw on (persona's and conversation's).
    document_ids: list[str] = field(default_factory=list)
    document_tags: list[str] = field(default_factory=list)

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return message["content"]
        return ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the replica's answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model wants a tool run: the room sends `conversation.tool_call` and waits for the result."""

    tool_call_id: str
    name: str
    arguments: str  # a JSON string, as the chat-completions API gives it


Output = TextDelta | ToolCall


class BrainError(Exception):
    """A failure the room reports to its participants as it is (an LLM error, a timeout)."""


class Brain(Protocol):
    name: str

    def reply(self, prompt: Prompt) -> AsyncIterator[Output]:
        """The answer to `prompt`, piece by piece. Cancelling the iteration (an interrupt) must stop
        all work at once. Raises BrainError for failures the room should show."""
        ...
