"""Deployments: a PAL published as a landing page, an embed or a widget (`/v2/deployments`).

A deployment is `{pal_id, channel, status, name, allowed_origins, limits, customization}`.
The rules here are the ones that need no storage: which fields exist and what they
may hold, what an origin is and which origins a list allows, a JSON merge patch,
and the default name. Errors read like the other resources':
`{"error": "Invalid request: ..."}`.

`customization` keeps keys Palaver does not use (Tavus's PAL Maker stores themes
and modality there), but the two it does use, `conversation` and `landing_page`,
are checked field by field: a typo there would otherwise pass silently and the
page would show nothing.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from palaver.domain.objectives import first_problem

KIND = "deployment"  # the storage kinds: the deployment, and its usage counts (domain/deployment_usage.py)
USAGE_KIND = "deployment_usage"
CHANNELS = ("landing-page", "embed", "widget")
STATUSES = ("draft", "active", "inactive")
# How the SDK's recipe names a deployment it was given no name for ("<PAL name> Embed 2").
CHANNEL_LABELS = {"landing-page": "Link", "embed": "Embed", "widget": "Widget"}
EDITABLE = ("pal_id", "channel", "status", "name", "allowed_origins", "limits", "customization")
MAX_ORIGINS = 100
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def new_deployment_id() -> str:
    """`d` and 16 hex digits, the shape of Tavus's example ids (`d1234567890abcdef`)."""
    return "d" + secrets.token_hex(8)


# origins -------------------------------------------------------------------------------------


def parse_origin(value: Any) -> str | None:
    """`value` as a normalised origin (`scheme://host[:port]`, lower case, default port dropped), or
    None when it is not one. A host may start with `*.` (every subdomain of the rest). IPv6 literal
    hosts are not supported."""
    if not isinstance(value, str) or not 0 < len(value) <= 300 or any(c <= " " for c in value):
        return None
    scheme, sep, netloc = value.removesuffix("/").partition("://")
    scheme, netloc = scheme.lower(), netloc.lower()
    if not sep or scheme not in _DEFAULT_PORTS or any(c in netloc for c in "/?#@[]"):
        return None
    host, colon, port = netloc.partition(":")
    if not _HOST.fullmatch(host):
        return None
    if colon:
        if not port.isdigit() or not 0 < int(port) < 65536:
            return None
        if int(port) != _DEFAULT_PORTS[scheme]:
            return f"{scheme}://{host}:{int(port)}"
    return f"{scheme}://{host}"


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    """Whether a browser's `Origin` may use a deployment with this `allowed_origins`: an empty list
    allows every site (as the SDK documents); a `*.` entry allows every subdomain (not the bare domain)."""
    if not allowed:
        return True
    normal = parse_origin(origin)
    if normal is None or "*" in normal:
        return False
    for entry in allowed:
        if entry == normal:
            return True
        if "://*." in entry:
            scheme, _, rest = entry.partition("://*.")
            suffix_host, _, suffix_port = rest.partition(":")
            o_scheme, _, o_rest = normal.partition("://")
            o_host, _, o_port = o_rest.partition(":")
            if o_scheme == scheme and o_port == suffix_port and o_host.endswith("." + suffix_host):
                return True
    return False


# fields --------------------------------------------------------------------------------------


def _link(value: str, *, images: bool = False) -> str:
    """An http(s) URL (or, for images, a `data:image/...` URL): nothing a page could run."""
    if images and value.startswith("data:image/"):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c <= " " for c in value):
        raise ValueError("must be an http(s) URL" + (" or a data:image URL" if images else ""))
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Limits(_Strict):
    """Caps on the deployment's use; a limit that is not set does not apply. Days are UTC days."""

    daily_call_limit: int | None = Field(None, ge=1, le=10_000_000)
    daily_call_limit_per_user: int | None = Field(None, ge=1, le=10_000_000)
    concurrent_call_limit: int | None = Field(None, ge=1, le=100_000)
    max_call_duration: int | None = Field(None, ge=1, le=86_400, description="Seconds, as the conversation's.")


class Button(_Strict):
    title: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2048)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _link(value)


class LandingPage(_Strict):
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    cta: list[Button] | None = Field(None, max_length=10)
    logo: str | None = Field(None, max_length=200_000)

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        return None if value is None else _link(value, images=True)


class ConversationSettings(_Strict):
    unique_memory_tag: bool | None = Field(None, description="true: a memory per visitor; false: one shared")
    context: str | None = Field(None, max_length=200_000, description="The conversation's conversational_context")


class Customization(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    conversation: ConversationSettings | None = None
    landing_page: LandingPage | None = None


class DeploymentFields(_Strict):
    pal_id: str = Field(min_length=1, max_length=64)
    channel: Literal["landing-page", "embed", "widget"]
    status: Literal["draft", "active", "inactive"] = "active"
    name: str | None = Field(None, max_length=255)
    allowed_origins: list[str] = Field(default_factory=list, max_length=MAX_ORIGINS)
    limits: Limits | None = None
    customization: Customization | None = None
    password: None = Field(None, description="Password-protected deployments are not supported")

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            origin = parse_origin(value)
            if origin is None:
                raise ValueError(
                    f"{value!r} is not an origin such as https://www.example.com (scheme and host, no path)"
                )
            if origin not in out:
                out.append(origin)
        return out


def check_deployment(fields: dict[str, Any]) -> dict[str, Any] | str:
    """The editable fields complete and normalised (`name` may still be None), or why they are refused
    (already `Invalid request: ...`)."""
    if fields.get("password") is not None:
        return "Invalid request: password: password-protected deployments are not supported by Palaver"
    for required in ("pal_id", "channel"):
        if fields.get(required) in (None, ""):
            return f"Invalid request: {required} is required"
    try:
        parsed = DeploymentFields.model_validate(fields)
    except ValidationError as exc:
        return f"Invalid request: {first_problem(exc)}"
    if parsed.name is not None and not parsed.name.strip():
        return "Invalid request: name must not be blank"
    customization = parsed.customization.model_dump(exclude_none=True) if parsed.customization else {}
    return {
        "pal_id": parsed.pal_id,
        "channel": parsed.channel,
        "status": parsed.status,
        "name": parsed.name,
        "allowed_origins": parsed.allowed_origins,
        "limits": parsed.limits.model_dump(exclude_none=True) if parsed.limits else {},
        "customization": customization,
    }


def default_name(pal_name: str | None, channel: str, taken: list[str]) -> str:
    """`<PAL name> Link|Embed|Widget`, numbered from 2 when taken: the name the SDK's recipe would give."""
    base = f"{(pal_name or '').strip() or 'Untitled'} {CHANNEL_LABELS[channel]}"
    if base not in taken:
        return base
    number = 2
    while f"{base} {number}" in taken:
        number += 1
    return f"{base} {number}"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge member by member, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
