"""Deployments: create, read, list, patch, delete, and how a deployment is shown.

A deployment names a PAL, which must be a stock one or one of the caller's own
with a default face (a visitor's conversation needs one); another account's PAL
is `Invalid pal_id`, as everywhere. An unknown, malformed or foreign deployment
id is 404 `{"error": "Deployment not found"}`, like the other newer resources.

What a deployment shows beyond its stored fields is computed on every read, so
it follows the server's configuration: `usage_today` and `usage_total` (from its
usage object, service/deployment_visits.py), and where it lives: the landing
page's `landing_page_url`, or for an embed or a widget the `snippet` to paste
into a site. A PATCH is RFC 6902 JSON Patch (what Tavus documents) or, for a
plain object (what the SDK's generic `patch` sends when given one), RFC 7396
merge patch, on the deployment as GET shows it; the computed and server-set
fields are ignored, as the dictionaries resource ignores its own.
"""

from __future__ import annotations

import html
from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.deployment_usage import counts
from palaver.domain.deployments import KIND, USAGE_KIND, check_deployment, default_name, merge_patch, new_deployment_id
from palaver.domain.errors import InvalidPatch, PalaverError, ResourceNotFound, ValidationFailed
from palaver.domain.patches import apply_patch
from palaver.domain.personas import PAL
from palaver.service.conversations import ConversationService
from palaver.service.deployment_visits import DeploymentVisits
from palaver.service.personas import PersonaService
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.base import Storage
from palaver.storage.resources import ResourceRecord

BAD_PATCH = InvalidPatch("Invalid JSON patch format")
PATCH_FAILED = InvalidPatch("JSON patch could not be applied:")
# Shown, never set by a client: a patch that changes them is ignored.
SERVER_FIELDS = frozenset(
    {"deployment_id", "has_password", "usage_today", "usage_total", "landing_page_url", "snippet", "created_at",
     "updated_at"}
)  # fmt: skip


def not_found() -> ResourceNotFound:
    return ResourceNotFound("Deployment not found")


class PreconditionFailed(PalaverError):
    """A PATCH whose `If-Match` names another version than the stored one (412)."""


def etag(document: dict[str, Any]) -> str:
    """A weak ETag from `updated_at`, as Tavus's GET sends it (pass it back as `If-Match` on PATCH)."""
    return f'W/"{document["updated_at"]}"'


def etag_matches(if_match: str, document: dict[str, Any]) -> bool:
    wanted = etag(document).removeprefix("W/")
    return any(tag.strip() in ("*", wanted) or tag.strip().removeprefix("W/") == wanted for tag in if_match.split(","))


class DeploymentService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        personas: PersonaService,
        conversations: ConversationService,
        *,
        public_url: str,
    ) -> None:
        self.resources = Resources(storage.resources, clock, ResourceKind(KIND, not_found))
        # Counters, not a resource of their own: no stamps, never listed by clients.
        self.usage = Resources(storage.resources, clock, ResourceKind(USAGE_KIND, not_found, stamps=False))
        self.clock = clock
        self.personas = personas
        self.public_url = public_url.rstrip("/")
        self.visits = DeploymentVisits(self, storage, conversations, clock)

    # where a deployment lives ---------------------------------------------------------------------

    def page_url(self, deployment_id: str) -> str:
        """The landing page: the SDK's own link with `TAVUS_PAL_MAKER_URL` set to Palaver's public URL."""
        return f"{self.public_url}/deployments/{deployment_id}"

    def script_url(self, deployment_id: str) -> str:
        return f"{self.page_url(deployment_id)}/embed.js"

    def snippet(self, channel: str, deployment_id: str) -> str:
        """What a site pastes: the script, and for an embed the element it renders into (where it stands)."""
        script = f'<script src="{html.escape(self.script_url(deployment_id))}" async></script>'
        if channel == "embed":
            return f'<palaver-embed deployment-id="{deployment_id}"></palaver-embed>\n{script}'
        return script

    def render(self, body: dict[str, Any], usage: dict[str, Any] | None) -> dict[str, Any]:
        today, total = counts(usage, self.clock.now())
        shown = {k: v for k, v in body.items() if k not in ("created_at", "updated_at")}
        shown.update(usage_today=today, usage_total=total)
        if body["channel"] == "landing-page":
            shown["landing_page_url"] = self.page_url(body["deployment_id"])
        else:
            shown["snippet"] = self.snippet(body["channel"], body["deployment_id"])
        shown.update(created_at=body["created_at"], updated_at=body["updated_at"])
        return shown

    async def _usage_of(self, record: ResourceRecord) -> dict[str, Any] | None:
        usage = await self.usage.find(record.account_id, record.resource_id)
        return None if usage is None else usage.body

    # reads ------------------------------------------------------------------------------------------

    async def get(self, account_id: str, deployment_id: str) -> dict[str, Any]:
        record = await self.resources.get(account_id, deployment_id)
        return self.render(record.body, await self._usage_of(record))

    async def list(
        self, account_id: str, *, pal_id: str | None, channel: str | None, status: str | None
    ) -> list[dict[str, Any]]:
        """The account's deployments under the filters, newest first."""
        usage = {r.resource_id: r.body for r in await self.usage.list(account_id)}
        return [
            self.render(r.body, usage.get(r.resource_id))
            for r in await self.resources.list(account_id)
            if (pal_id is None or r.body["pal_id"] == pal_id)
            and (channel is None or r.body["channel"] == channel)
            and (status is None or r.body["status"] == status)
        ]

    # writes -----------------------------------------------------------------------------------------

    async def create(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = _checked(body)
        pal = await self._pal(account_id, fields["pal_id"])
        if fields["name"] is None:
            fields["name"] = await self._default_name(account_id, pal, fields["channel"])
        deployment_id = new_deployment_id()
        document = {
            "deployment_id": deployment_id,
            "pal_id": fields["pal_id"],
            "channel": fields["channel"],
            "status": fields["status"],
            "name": fields["name"],
            "has_password": False,
            "allowed_origins": fields["allowed_origins"],
            "limits": fields["limits"],
            "customization": fields["customization"],
        }
        record = await self.resources.add(account_id, deployment_id, document)
        return self.render(record.body, None)

    async def patch(
        self, account_id: str, deployment_id: str, operations: Any, *, if_match: str | None = None
    ) -> dict[str, Any]:
        current = await self.resources.get(account_id, deployment_id)  # an unknown id before the patch's errors
        usage = await self._usage_of(current)

        async def change(body: dict[str, Any]) -> dict[str, Any]:
            if if_match is not None and not etag_matches(if_match, body):
                raise PreconditionFailed("The deployment changed since it was read: GET it again (If-Match)")
            view = self.render(body, usage)
            if isinstance(operations, list):
                patched = apply_patch(view, operations, malformed=BAD_PATCH, failed=PATCH_FAILED)
            elif isinstance(operations, dict) and operations:
                patched = merge_patch(view, operations)
            else:
                raise BAD_PATCH
            fields = _checked({k: v for k, v in patched.items() if k not in SERVER_FIELDS})
            if fields["pal_id"] != body["pal_id"]:
                await self._pal(account_id, fields["pal_id"])
            if fields["name"] is None:
                pal = await self._pal(account_id, fields["pal_id"])
                fields["name"] = await self._default_name(account_id, pal, fields["channel"], deployment_id)
            return {**body, **fields}

        record = await self.resources.change(account_id, deployment_id, change)
        return self.render(record.body, usage)

    async def delete(self, account_id: str, deployment_id: str) -> None:
        """Delete it (its pages answer 404 from then on) and its usage counts."""
        await self.resources.remove(account_id, deployment_id)
        if await self.usage.find(account_id, deployment_id) is not None:
            try:
                await self.usage.remove(account_id, deployment_id)
            except ResourceNotFound:
                pass  # removed meanwhile

    # rules ------------------------------------------------------------------------------------------

    async def _pal(self, account_id: str, pal_id: str) -> dict[str, Any]:
        """The PAL a deployment names: stock or the account's own (else `Invalid pal_id`), with a default face."""
        pal = await self.personas.document(account_id, pal_id, PAL)
        if not pal.get("default_replica_id"):
            raise ValidationFailed(f"Invalid request: PAL {pal_id} has no default_face_id to hold conversations with")
        return pal

    async def _default_name(
        self, account_id: str, pal: dict[str, Any], channel: str, exclude: str | None = None
    ) -> str:
        taken = [
            r.body["name"]
            for r in await self.resources.list(account_id)
            if r.body["pal_id"] == pal["persona_id"] and r.resource_id != exclude
        ]
        return default_name(pal.get("persona_name"), channel, taken)


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    checked = check_deployment(fields)
    if isinstance(checked, str):
        raise ValidationFailed(checked)
    return checked
