"""A visitor starts a conversation through a deployment: no API key, the deployment's rules instead.

The deployment is found by its id alone (its pages are public). Only an
`active` one serves. A browser's `Origin` must be allowed by its
`allowed_origins` (an empty list allows every site; this server's own origin,
where the landing page lives, always is); a request without an `Origin` is not
a browser's and is not checked, since any client can send whatever origin it
likes: the origin check keeps other sites from putting the deployment on their
pages, the limits are what bound its use.

A start is counted against the limits first, under the id its conversation is
then created with, in one compare-and-swap of the deployment's usage object
(domain/deployment_usage.py): concurrent clicks, on one process or many, cannot
overshoot a limit. If the conversation cannot be created, the count is taken
back. The conversation belongs to the deployment's account, talks to its PAL
(with the PAL's default face), gets `customization.conversation.context` as its
`conversational_context` and `limits.max_call_duration` as its
`properties.max_call_duration`, and records `deployment_id` in its request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from palaver.domain.clock import Clock
from palaver.domain.deployment_usage import LimitReached, admit, finished, needs_statuses, release, utc_day
from palaver.domain.deployments import KIND, origin_allowed, parse_origin
from palaver.domain.errors import ConcurrencyLimitReached, InvalidId, PalaverError, ValidationFailed
from palaver.domain.ids import is_resource_id, new_conversation_id
from palaver.domain.personas import PAL
from palaver.domain.timers import TimerSettings
from palaver.service.conversations import ConversationService, CreateConversation
from palaver.service.resources import ChangeConflict
from palaver.storage.base import ConversationRecord, Storage
from palaver.storage.resources import ResourceRecord

if TYPE_CHECKING:
    from palaver.service.deployments import DeploymentService

log = logging.getLogger("palaver.deployments")


class Refusal(PalaverError):
    """Why a public page or start is refused: the HTTP status and a sentence for the visitor.

    `limit` names the limit that refused a start (`daily_call_limit`, ...), for pages and scripts.
    """

    def __init__(self, status: int, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.limit = limit


class DeploymentVisits:
    def __init__(
        self, deployments: DeploymentService, storage: Storage, conversations: ConversationService, clock: Clock
    ) -> None:
        self._deployments = deployments
        self._storage = storage
        self._conversations = conversations
        self._clock = clock

    async def find(self, deployment_id: str) -> ResourceRecord | None:
        """The deployment by its id alone, whatever its status and whoever owns it."""
        if not is_resource_id(deployment_id):
            return None
        return await self._storage.resources.lookup(KIND, deployment_id)

    async def active(self, deployment_id: str) -> ResourceRecord:
        """The deployment, if it exists and is active; otherwise a Refusal that says which."""
        record = await self.find(deployment_id)
        if record is None:
            raise Refusal(404, "There is no such deployment: the link is wrong, or the deployment was deleted.")
        status = record.body["status"]
        if status != "active":
            raise Refusal(403, f"This deployment is {status}: it does not start conversations right now.")
        return record

    async def pal_name(self, record: ResourceRecord) -> str | None:
        """The name of the deployment's PAL, for its pages (None if the PAL is gone)."""
        try:
            pal = await self._deployments.personas.document(record.account_id, record.body["pal_id"], PAL)
        except InvalidId:
            return None
        return pal.get("persona_name")

    @staticmethod
    def origin_refused(record: ResourceRecord, origin: str | None, own_origins: frozenset[str]) -> bool:
        if origin is None or parse_origin(origin) in own_origins:
            return False
        return not origin_allowed(origin, record.body["allowed_origins"])

    async def start(
        self, deployment_id: str, *, visitor: str, origin: str | None, own_origins: frozenset[str]
    ) -> ConversationRecord:
        """Start a conversation for a visitor (`visitor`: their key, domain/deployment_usage.visitor_key)."""
        record = await self.active(deployment_id)
        if self.origin_refused(record, origin, own_origins):
            raise Refusal(403, f"This site ({origin}) is not allowed to start conversations with this deployment.")
        conversation_id = new_conversation_id()
        now = self._clock.now()
        try:
            await self._count(record, visitor, conversation_id, now)
        except LimitReached as exc:
            raise Refusal(429, exc.message, limit=exc.limit) from None
        except ChangeConflict:
            raise Refusal(429, "Too many people are starting a conversation at this moment. Please try again.",
                          limit="busy") from None  # fmt: skip
        try:
            return await self._conversations.create(record.account_id, _spec(record, visitor, conversation_id))
        except Exception as exc:
            await self._uncount(record, visitor, conversation_id, utc_day(now))
            if isinstance(exc, ConcurrencyLimitReached):
                raise Refusal(429, "The service is at its limit of conversations at once. Please try again in a "
                              "few minutes.", limit="account") from None  # fmt: skip
            if isinstance(exc, InvalidId | ValidationFailed):
                raise Refusal(409, "This deployment cannot start conversations: its PAL or the PAL's face is "
                              "no longer available.") from None  # fmt: skip
            raise

    async def _count(self, record: ResourceRecord, visitor: str, conversation_id: str, now: float) -> None:
        account_id, deployment_id = record.account_id, record.resource_id
        limits = record.body["limits"]
        usage = self._deployments.usage

        async def count(body: dict[str, Any]) -> dict[str, Any]:
            gone: set[str] = set()
            if needs_statuses(body, limits):
                for counted, at in (body.get("active") or {}).items():
                    conversation = await self._storage.find_conversation(counted)
                    if finished(at, None if conversation is None else conversation.status, now):
                        gone.add(counted)
            return admit(body, limits, visitor=visitor, conversation_id=conversation_id, now=now, gone=gone)

        if await usage.find(account_id, deployment_id) is None:
            first = await count({})
            try:
                await usage.add(account_id, deployment_id, first)
                return
            except Exception:
                if await usage.find(account_id, deployment_id) is None:
                    raise  # not a concurrent first start: a real failure
        await usage.change(account_id, deployment_id, count)

    async def _uncount(self, record: ResourceRecord, visitor: str, conversation_id: str, day: str) -> None:
        async def give_back(body: dict[str, Any]) -> dict[str, Any]:
            now = self._clock.now()
            return release(body, visitor=visitor, conversation_id=conversation_id, day=day, now=now)

        try:
            await self._deployments.usage.change(record.account_id, record.resource_id, give_back)
        except Exception:  # the start's own error is what the visitor must see
            log.exception("deployment %s: could not take back a start that failed", record.resource_id)


def _spec(record: ResourceRecord, visitor: str, conversation_id: str) -> CreateConversation:
    """The conversation a deployment starts, and the request it is recorded with."""
    body = record.body
    settings = body["customization"].get("conversation") or {}
    context = settings.get("context") or None
    request: dict[str, Any] = {"pal_id": body["pal_id"], "conversation_name": body["name"]}
    if context:
        request["conversational_context"] = context
    timers = TimerSettings()
    duration = body["limits"].get("max_call_duration")
    if duration is not None:
        request["properties"] = {"max_call_duration": duration}
        timers = TimerSettings(max_call_duration=duration)
    memory = settings.get("unique_memory_tag")
    if memory is not None:  # a memory per visitor, or one the deployment's visitors share
        request["memory_stores"] = [f"{record.resource_id}:{visitor}" if memory else record.resource_id]
    request["deployment_id"] = record.resource_id
    return CreateConversation(
        persona_id=body["pal_id"],
        conversation_name=body["name"],
        conversational_context=context,
        timers=timers,
        request=request,
        conversation_id=conversation_id,
    )
