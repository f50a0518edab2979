"""What a brain may know beyond its prompt: passages of the conversation's knowledge-base documents.

Both the LLM brain (retrieval for the model) and the offline brain (quoting an
answer) need the same thing: the few stored chunks most relevant to what the
participant just said, each with the name of the document it comes from, so
the name can be shown. The search is the documents resource's own full-text
search (`DocumentService.search`), which turns any user text into plain search
words first, so quotes, punctuation or FTS operators in a question can never
make a malformed query.

`excerpt` cuts a chunk (up to ~1,000 characters) down to the sentences that
answer, at sentence boundaries, deterministically, and says how well it
answers: a chunk the search found only through a stop word ("the", "is": the
SQLite index keeps them) has relevance 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from palaver.service.brains.base import Prompt
from palaver.service.documents import DocumentService
from palaver.storage.document_chunks import search_terms

# Words that carry no meaning for choosing a sentence (a question's "what is the ...").
_STOP_WORDS = frozenset(
    "a about an and any are as at be been but by can could did do does for from had has have how i if in into is it "
    "its me my of on or our please should so tell than that the their them then there these they this to us was we "
    "were what when where which who why will with would you your".split()
)
# A sentence ends at . ! ? (or a line break) followed by white space.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved chunk and where it comes from."""

    document_id: str
    document_name: str
    text: str
    score: float  # higher is more relevant; comparable within one retrieval only


def has_knowledge(prompt: Prompt) -> bool:
    """Whether the conversation names any documents at all (by id or by tag)."""
    return bool(prompt.document_ids or prompt.document_tags)


async def retrieve(documents: DocumentService, prompt: Prompt, query: str, *, limit: int = 3) -> list[Passage]:
    """The passages of the prompt's documents most relevant to `query`, best first (none without documents)."""
    if not has_knowledge(prompt) or not search_terms(query):
        return []
    hits = await documents.search(
        prompt.account_id, query, document_ids=prompt.document_ids, tags=prompt.document_tags, limit=limit
    )
    names: dict[str, str] = {}
    for hit in hits:
        if hit.document_id not in names:
            record = await documents.resources.find(prompt.account_id, hit.document_id)
            body = record.body if record is not None else {}
            names[hit.document_id] = str(body.get("document_name") or hit.document_id)
    return [Passage(h.document_id, names[h.document_id], h.content, h.score) for h in hits]


def sentences(text: str) -> list[str]:
    """The sentences of `text`, white space collapsed, empty pieces dropped."""
    return [" ".join(piece.split()) for piece in _SENTENCE_END.split(text) if piece.strip()]


def meaningful_terms(query: str) -> list[str]:
    """The query's search words less the stop words (all of them if nothing else is left)."""
    terms = search_terms(query)
    kept = [t for t in terms if t not in _STOP_WORDS and len(t) > 1]
    return kept or terms


def _matches(word: str, term: str) -> bool:
    """The same word, or one a prefix of the other when both are 4+ letters ("price"/"prices", "host"/"hosted")."""
    if word == term:
        return True
    return min(len(word), len(term)) >= 4 and (word.startswith(term) or term.startswith(word))


def relevance(sentence: str, terms: list[str]) -> int:
    """How many of the terms the sentence holds."""
    words = set(search_terms(sentence))
    return sum(1 for term in terms if any(_matches(word, term) for word in words))


@dataclass(frozen=True, slots=True)
class Excerpt:
    text: str
    relevance: int  # query words in its best sentence: 0 when the chunk only matched stop words


def excerpt(text: str, query: str, *, max_chars: int, context_chars: int = 120) -> Excerpt:
    """The sentences of `text` that best answer `query`, whole, at most `max_chars` long.

    The excerpt starts at the sentence holding the most query words (the first
    such, on a tie). It takes in the following sentences while they fit and
    either hold a query word too or the excerpt is still under `context_chars`,
    then the preceding ones that fit and hold a query word. A single sentence
    longer than `max_chars` is cut at a word boundary and marked with an ellipsis.
    """
    parts = sentences(text)
    if not parts:
        return Excerpt("", 0)
    terms = meaningful_terms(query)
    scores = [relevance(part, terms) for part in parts]
    best = scores.index(max(scores))
    start = end = best
    length = len(parts[best])

    def fits(index: int) -> bool:
        return length + 1 + len(parts[index]) <= max_chars

    while end + 1 < len(parts) and fits(end + 1) and (scores[end + 1] > 0 or length < context_chars):
        end += 1
        length += 1 + len(parts[end])
    while start > 0 and fits(start - 1) and scores[start - 1] > 0:
        start -= 1
        length += 1 + len(parts[start])
    chosen = " ".join(parts[start : end + 1])
    if len(chosen) > max_chars:
        chosen = chosen[: max_chars - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return Excerpt(chosen, scores[best])
