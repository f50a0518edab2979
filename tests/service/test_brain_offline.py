"""The offline brain over real stored documents, on each backend: documents are created through the
documents service, processed by its job (fetched from an in-memory origin, no network), and searched
by the database's own full-text index. Also: the LLM brain's retrieval into the system message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest
from backends import Backend
from llm_server import Reply, serve_llm

from palaver.delivery.fetch import Fetched
from palaver.domain.clock import ManualClock
from palaver.service.brains.base import Prompt, TextDelta
from palaver.service.brains.llm import LlmBrain, LlmEndpoint
from palaver.service.brains.offline import NO_DOCUMENTS, NO_MATCH, NO_QUESTION, OfflineBrain
from palaver.service.document_processing import JOB_KIND, DocumentProcessor
from palaver.service.documents import DocumentService
from palaver.service.jobs import JobRunner
from palaver.service.keys import issue_key

T = TypeVar("T")

PRICING = (
    "Palaver is free to self-host. The hosted plan costs 49 dollars a month and includes ten concurrent "
    "conversations. Annual billing gets two months free. Refunds are given within 30 days of purchase."
)
TRAVEL = (
    "Employees book flights through the travel desk. Economy class is required for flights under six hours. "
    "Hotel stays are reimbursed up to 180 dollars a night."
)
ROADMAP = "The llama feature ships in March. Nobody outside the team may know."
PAGES = {"/pricing.txt": PRICING, "/travel.txt": TRAVEL, "/roadmap.txt": ROADMAP}


class Knowledge:
    """One account with three processed documents: two a persona uses (one by id, one by tag), one it does not."""

    def __init__(self, backend: Backend) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.storage = backend.open()
        self.run(self.storage.migrate())
        jobs = JobRunner(self.storage.resources, self.clock, lease_s=600, retry_s=30)
        self.service = DocumentService(self.storage.resources, self.storage.document_chunks, self.clock, jobs,
                                       allow_private=False)  # fmt: skip

        async def origin(url: str, timeout: float) -> Fetched:
            path = url.removeprefix("https://docs.example")
            return Fetched(url, 200, "text/plain", PAGES[path].encode())

        self.service.processor = DocumentProcessor(self.service.resources, self.storage.resources,
                                                   self.storage.document_chunks, self.clock, allow_private=False,
                                                   fetcher=origin)  # fmt: skip
        jobs.register(JOB_KIND, self.service.job_kind())
        self.account = self.run(issue_key(self.storage, self.clock)).account_id
        self.pricing = self.create("/pricing.txt", "Pricing FAQ", tags=["pricing"])
        self.travel = self.create("/travel.txt", "Travel policy")
        self.roadmap = self.create("/roadmap.txt", "Secret roadmap", tags=["internal"])
        while self.run(jobs.run_due()):
            pass
        assert all(self.run(self.service.get(self.account, d))["status"] == "ready" for d in self.ids)

    @property
    def ids(self) -> list[str]:
        return [self.pricing, self.travel, self.roadmap]

    def create(self, path: str, name: str, tags: list[str] | None = None) -> str:
        body = {"document_url": "https://docs.example" + path, "document_name": name, "tags": tags or []}
        return str(self.run(self.service.create(self.account, body))["document_id"])

    def prompt(self, question: str, *, ids: list[str] | None = None, tags: list[str] | None = None) -> Prompt:
        messages = [{"role": "system", "content": "You are a test replica."}, {"role": "user", "content": question}]
        return Prompt(self.account, "c1", messages, document_ids=ids or [], document_tags=tags or [])

    def persona_prompt(self, question: str) -> Prompt:
        """The persona's knowledge: the travel policy by id, the pricing FAQ by its tag."""
        return self.prompt(question, ids=[self.travel], tags=["pricing"])

    def answer(self, prompt: Prompt) -> tuple[str, list[str]]:
        """The whole answer and the pieces it streamed in."""

        async def collect() -> list[str]:
            out = []
            async for piece in OfflineBrain(self.service).reply(prompt):
                assert isinstance(piece, TextDelta)
                out.append(piece.text)
            return out

        pieces = self.run(collect())
        return "".join(pieces), pieces

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await awaitable

        return self.loop.run_until_complete(wrap())

    def close(self) -> None:
        self.run(self.storage.close())
        self.loop.close()


@pytest.fixture
def knowledge(backend: Backend) -> Iterator[Knowledge]:
    world = Knowledge(backend)
    yield world
    world.close()


def test_quotes_the_relevant_passage_and_names_its_document(knowledge: Knowledge) -> None:
    text, pieces = knowledge.answer(knowledge.persona_prompt("How much does the hosted plan cost per month?"))
    assert text == (
        'From "Pricing FAQ": Palaver is free to self-host. The hosted plan costs 49 dollars a month and includes '
        "ten concurrent conversations. Annual billing gets two months free."
    )
    assert len(pieces) > 3 and all(pieces)  # streamed in word groups


def test_a_document_found_by_id_is_quoted_too(knowledge: Knowledge) -> None:
    text, _ = knowledge.answer(knowledge.persona_prompt("Which class must I fly on short flights?"))
    assert text.startswith('From "Travel policy": Employees book flights through the travel desk. Economy class')
    assert "Pricing" not in text


def test_two_documents_that_both_answer_are_both_quoted(knowledge: Knowledge) -> None:
    text, _ = knowledge.answer(knowledge.persona_prompt("How many dollars for hotel nights and the hosted plan?"))
    assert text.startswith('From "Pricing FAQ": ')  # the most question words: hosted, plan, dollars
    assert text.endswith('\n\nAlso from "Travel policy": Hotel stays are reimbursed up to 180 dollars a night.')


def test_nothing_matching_says_so_plainly(knowledge: Knowledge) -> None:
    assert knowledge.answer(knowledge.persona_prompt("What is the capital of Mongolia?"))[0] == NO_MATCH
    # The roadmap matches, but it is not this persona's document: never quoted.
    assert knowledge.answer(knowledge.persona_prompt("When does the llama feature ship?"))[0] == NO_MATCH
    assert "language model" in NO_MATCH and "knowledge base" in NO_MATCH


def test_no_documents_and_no_question_are_said_plainly(knowledge: Knowledge) -> None:
    assert knowledge.answer(knowledge.prompt("How much is the hosted plan?"))[0] == NO_DOCUMENTS
    assert knowledge.answer(knowledge.persona_prompt("   "))[0] == NO_QUESTION
    deleted = knowledge.prompt("hosted plan", ids=["d0000000000"])  # names a document that does not exist
    assert knowledge.answer(deleted)[0] == NO_MATCH


@pytest.mark.parametrize(
    "hostile",
    [
        'plan" OR "x* NEAR(a b) AND NOT "',
        '"""',
        "*",
        "NEAR",
        "plan'; DROP TABLE document_chunks; --",
        "cost:* & !month | (plan <-> hosted)",
        "^hosted + -plan ~cost",
        "\x00\u202e价格 计划?",
        "a" * 5000,
    ],
)
def test_hostile_question_text_never_raises(knowledge: Knowledge, hostile: str) -> None:
    text, _ = knowledge.answer(knowledge.persona_prompt(hostile))
    assert text  # an answer of some kind, not an exception
    assert knowledge.answer(knowledge.persona_prompt("hosted plan cost"))[0].startswith('From "Pricing FAQ"')


def test_the_answer_is_deterministic(knowledge: Knowledge) -> None:
    prompt = knowledge.persona_prompt("Are refunds possible after purchase?")
    first, pieces = knowledge.answer(prompt)
    assert [knowledge.answer(prompt) for _ in range(3)] == [(first, pieces)] * 3
    assert first.startswith('From "Pricing FAQ": ') and "Refunds are given within 30 days" in first


def test_the_llm_brain_hands_the_relevant_passages_to_the_model(knowledge: Knowledge) -> None:
    with serve_llm() as llm:
        llm.script(Reply(tokens=["It costs 49 dollars."]))
        brain = LlmBrain(LlmEndpoint(llm.url, "m", guarded=False), knowledge=knowledge.service)

        async def collect() -> str:
            outputs = [out async for out in brain.reply(knowledge.persona_prompt("hosted plan cost?"))]
            return "".join(out.text for out in outputs if isinstance(out, TextDelta))

        assert knowledge.run(collect()) == "It costs 49 dollars."
        system = llm.requests[0].messages[0]
        assert system["role"] == "system" and system["content"].startswith("You are a test replica.\n\nKnowledge base:")
        assert f'From "Pricing FAQ":\n{PRICING}' in system["content"] and "llama" not in system["content"]
        assert llm.requests[0].messages[1:] == knowledge.persona_prompt("hosted plan cost?").messages[1:]


def test_cancelling_the_offline_answer_stops_it(knowledge: Knowledge) -> None:
    async def first_piece() -> Any:
        replies = OfflineBrain(knowledge.service).reply(knowledge.persona_prompt("hosted plan cost"))
        piece = await replies.__anext__()
        await replies.aclose()
        return piece

    assert knowledge.run(first_piece()) == TextDelta('From "Pricing FAQ": Palaver ')
