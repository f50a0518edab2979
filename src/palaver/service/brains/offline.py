"""The offline brain: what a replica says when no language model is configured for it.

It does not pretend to be a model. Asked something, it looks the question up in
the conversation's knowledge base (the persona's and the conversation's
documents, by id and tag, through the documents resource's full-text search)
and either quotes the most relevant passage, naming the document it comes
from, or says plainly that no language model is configured and that nothing in
the knowledge base matches. The answer is a pure function of the question and
the stored documents, so tests can assert it word for word, and it streams in
word groups like any other answer so the room's streaming path is exercised.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

from palaver.service.brains.base import BrainError, Output, Prompt, TextDelta
from palaver.service.brains.knowledge import Passage, excerpt, has_knowledge, retrieve
from palaver.service.documents import DocumentService

NO_DOCUMENTS = (
    "No language model is configured for this replica, and it has no knowledge base documents to answer from."
)
NO_MATCH = "No language model is configured for this replica, and nothing in its knowledge base matches that question."
NO_QUESTION = "No language model is configured for this replica. Ask a question and it will look in its knowledge base."
MAX_QUOTE = 400  # characters of the best passage
MAX_SECOND_QUOTE = 250  # characters of a second passage from another document, when one matches too
WORDS_PER_PIECE = 4
_WORD = re.compile(r"\S+\s*")
log = logging.getLogger("palaver.brains")


class OfflineBrain:
    name = "offline"

    def __init__(self, documents: DocumentService) -> None:
        self.documents = documents

    async def reply(self, prompt: Prompt) -> AsyncIterator[Output]:
        for piece in pieces(await self.answer(prompt)):
            yield TextDelta(piece)

    async def answer(self, prompt: Prompt) -> str:
        """The whole answer to the prompt's last user message (see the module docstring)."""
        question = prompt.last_user_text
        if not has_knowledge(prompt):
            return NO_DOCUMENTS
        if not question.strip():
            return NO_QUESTION
        try:
            passages = await retrieve(self.documents, prompt, question, limit=3)
        except Exception as exc:
            log.exception("knowledge search failed for conversation %s", prompt.conversation_id)
            raise BrainError("The replica's knowledge base could not be searched just now; try again") from exc
        quoted = compose(passages, question)
        return quoted or NO_MATCH


def compose(passages: list[Passage], question: str) -> str:
    """A quote of the best passage with its document's name, and of the best one from another document.

    A passage counts only if one of its sentences holds a word of the question
    that is not a stop word; the best is the one whose excerpt holds the most
    (the search's order breaks ties). Empty when no passage counts.
    """
    quotes = [(p, excerpt(p.text, question, max_chars=MAX_QUOTE)) for p in passages]
    quotes = [(p, e) for p, e in quotes if e.relevance > 0 and e.text]
    if not quotes:
        return ""
    best, first = max(quotes, key=lambda q: q[1].relevance)  # max keeps the first of equals
    answer = f'From "{best.document_name}": {first.text}'
    others = [(p, e) for p, e in quotes if p.document_id != best.document_id]
    if others:
        other, _ = max(others, key=lambda q: q[1].relevance)
        second = excerpt(other.text, question, max_chars=MAX_SECOND_QUOTE)
        if second.text and second.text != first.text:
            answer += f'\n\nAlso from "{other.document_name}": {second.text}'
    return answer


def pieces(text: str) -> list[str]:
    """`text` in groups of a few words, white space kept, so that the pieces join back to `text`."""
    words = _WORD.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    groups = ["".join(words[i : i + WORDS_PER_PIECE]) for i in range(0, len(words), WORDS_PER_PIECE)]
    if lead and groups:
        groups[0] = lead + groups[0]
    return groups or ([text] if text else [])
