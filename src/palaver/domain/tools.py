"""Tools: functions a PAL's LLM (or its perception layer) may call, and the rules a tool obeys.

A tool is delivered one of two ways: as an app message on the call's data
channel (`delivery.app_message: true`, the client runs it), or as an HTTPS
request Tavus makes itself (`delivery.api`), possibly authenticated. The rules
are the ones the official SDK's `ToolCreate` checks, so a body the SDK lets
through is accepted here and one it would refuse is refused here too; a plain
HTTP client gets the same checks from the server.

Secrets in `delivery.api.auth` are stored (Palaver would need them to call the
endpoint) but every read shows them as `********`; since a client that GETs a
tool and sends it back would otherwise store the asterisks as the secret, a
write carrying that placeholder is refused, and a PATCH that gives an `auth`
of the same type without its secret keeps the stored one.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from palaver.domain.errors import ValidationFailed

SCRUBBED = "*" * 8  # what a read shows in place of a secret
MAX_TOOL_SIZE = 10_000  # description + parameters as JSON, measured as the SDK measures it
MAX_TEMPLATE_SIZE = 10_000  # body_template as JSON
RESERVED_PREFIX = "tavus_"  # parameter names Tavus keeps for its own placeholders
NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,63}")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})
SECRET_FIELD = {
    "bearer": "token",
    "basic": "password",
    "api_key": "value",
    "hmac": "secret",
    "oauth2_client_credentials": "client_secret",
}
# Fields a client writes (create and PATCH); everything else in a row is the server's.
FIELDS = ("name", "description", "parameters", "delivery", "origin", "on_call", "on_resolve", "static_filler", "tags")
READ_ONLY = frozenset({"tool_id", "uuid", "is_system_tool", "created_at", "updated_at"})

Secret = Annotated[str, Field(min_length=1, max_length=4096)]
Text = Annotated[str, Field(min_length=1, max_length=1024)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]


def new_tool_id() -> str:
    return "t" + secrets.token_hex(6)


def _https(value: str) -> str:
    if not value.lower().startswith("https://") or any(c <= " " or c == "\x7f" for c in value):
        raise ValueError("must be an https:// URL")
    return value


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AuthNone(_Closed):
    type: Literal["none"]


class AuthBearer(_Closed):
    type: Literal["bearer"]
    token: Secret


class AuthBasic(_Closed):
    type: Literal["basic"]
    username: Text
    password: Secret


class AuthApiKey(_Closed):
    type: Literal["api_key"]
    name: Text
    value: Secret
    location: Literal["header", "query"] = "header"


class AuthHmac(_Closed):
    type: Literal["hmac"]
    secret: Secret


class AuthOAuth2(_Closed):
    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(max_length=2048)
    client_id: Text
    client_secret: Secret
    scope: str | None = Field(None, max_length=1024)

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return _https(value)


Auth = Annotated[
    AuthNone | AuthBearer | AuthBasic | AuthApiKey | AuthHmac | AuthOAuth2,
    Field(discriminator="type"),
]


class ApiDelivery(_Closed):
    """An HTTPS call Tavus makes when the tool fires; `{name}` placeholders take the call's arguments."""

    url: str = Field(max_length=2048)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    timeout: float = Field(10.0, gt=0, le=60, description="Seconds, in (0, 60].")
    headers: dict[str, Annotated[str, Field(max_length=8192)]] | None = Field(None, max_length=50)
    auth: Auth | None = None
    body_template: dict[str, Any] | None = None
    query_params: dict[str, Annotated[str, Field(max_length=2048)]] | None = Field(None, max_length=50)
    content_type: str | None = Field(None, max_length=255)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _https(value)

    @model_validator(mode="after")
    def _rules(self) -> ApiDelivery:
        if self.body_template is not None:
            if self.method in BODYLESS_METHODS:
                raise ValueError(f"method {self.method} sends no body: remove body_template or use POST/PUT/PATCH")
            if _json_size(self.body_template) > MAX_TEMPLATE_SIZE:
                raise ValueError(f"body_template is over {MAX_TEMPLATE_SIZE} characters as JSON")
        if self.auth is not None and self.auth.type in SECRET_FIELD:
            field = SECRET_FIELD[self.auth.type]
            if getattr(self.auth, field) == SCRUBBED:
                raise ValueError(
                    f"auth.{field} is the {SCRUBBED} placeholder a read shows; "
                    "send the real secret, or leave the field out of a PATCH to keep the stored one"
                )
        if isinstance(self.auth, AuthHmac):
            conflicts = [
                name
                for name, present in (
                    ("body_template", bool(self.body_template)),
                    ("query_params", bool(self.query_params)),
                    ("url placeholders", PLACEHOLDER.search(self.url) is not None),
                )
                if present
            ]
            if conflicts:
                raise ValueError(f"auth type hmac sends a fixed body to a fixed URL: remove {', '.join(conflicts)}")
        return self


class ToolDelivery(_Closed):
    app_message: bool | None = None
    api: ApiDelivery | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> ToolDelivery:
        if (self.app_message is True) == (self.api is not None):
            raise ValueError("delivery must enable exactly one channel: app_message: true, or api")
        return self


class ToolDocument(_Closed):
    """Every field a tool has (what `POST /v2/tools` takes), with the SDK's defaults."""

    name: str = Field(max_length=64, description="^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
    description: str = Field(min_length=1, max_length=MAX_TOOL_SIZE)
    parameters: dict[str, Any] = Field(default_factory=dict, description="JSON Schema of the arguments.")
    delivery: ToolDelivery = Field(default_factory=lambda: ToolDelivery(app_message=True))
    origin: Literal["llm", "vision", "audio"] = "llm"
    on_call: Literal["generate_filler", "static_filler", "silent", "passthrough"] | None = None
    on_resolve: Literal["generate_response", "response_in_result", "add_to_context", "fire_and_forget"] | None = (
        "fire_and_forget"
    )
    static_filler: str | None = Field(None, max_length=1000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if NAME.fullmatch(value) is None:
            raise ValueError("must start with a letter or underscore and hold only letters, digits and underscores")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _rules(self) -> ToolDocument:
        size = len(self.description) + _json_size(self.parameters)
        if size > MAX_TOOL_SIZE:
            raise ValueError(f"description + parameters come to {size} characters as JSON (limit {MAX_TOOL_SIZE})")
        declared = declared_parameters(self.parameters)
        reserved = sorted(name for name in declared if name.startswith(RESERVED_PREFIX))
        if reserved:
            raise ValueError(f"parameter names starting with {RESERVED_PREFIX!r} are reserved: {reserved}")
        if self.delivery.api is not None:
            missing = sorted(placeholders(self.delivery.api) - declared)
            if missing:
                raise ValueError(f"delivery.api uses placeholder(s) {missing} not declared in parameters.properties")
        _origin_rules(self)
        return self


def _origin_rules(tool: ToolDocument) -> None:
    if tool.origin == "llm":
        if tool.on_call == "static_filler" and not (tool.static_filler or "").strip():
            raise ValueError("static_filler is required when on_call is 'static_filler'")
        return
    # Perception tools fire and forget: nothing is said while they run, nothing waits for them.
    if tool.on_call is not None:
        raise ValueError(f"on_call must be null for {tool.origin} tools")
    if tool.on_resolve not in (None, "fire_and_forget"):
        raise ValueError(f"on_resolve must be 'fire_and_forget' for {tool.origin} tools")
    if tool.static_filler is not None:
        raise ValueError(f"static_filler must be null for {tool.origin} tools")


def _json_size(value: Any) -> int:
    try:
        return len(json.dumps(value, sort_keys=True))
    except (RecursionError, ValueError):
        raise ValueError("is nested too deeply") from None


def declared_parameters(parameters: dict[str, Any]) -> set[str]:
    properties = parameters.get("properties")
    return set(properties) if isinstance(properties, dict) else set()


def placeholders(api: ApiDelivery) -> set[str]:
    """The `{name}` placeholders of the URL and of the template and query values, less Tavus's own."""
    found = set(PLACEHOLDER.findall(api.url))
    stack: list[Any] = [api.body_template, api.query_params]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.update(PLACEHOLDER.findall(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return {name for name in found if not name.startswith(RESERVED_PREFIX)}


# documents ---------------------------------------------------------------------------------------


def check_tool(fields: dict[str, Any]) -> dict[str, Any]:
    """The complete stored fields of a tool from a client's `fields`, or ValidationFailed saying why not."""
    for key in sorted(READ_ONLY & fields.keys()):
        raise ValidationFailed(f"{key} is set by the server")
    try:
        model = ToolDocument.model_validate(fields)
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc)) from None
    except RecursionError:
        raise ValidationFailed("Request body is nested too deeply") from None
    values = model.model_dump(exclude={"delivery"})
    # The delivery as given: unset optional members are left out rather than shown as null.
    values["delivery"] = model.delivery.model_dump(exclude_none=True)
    return {key: values[key] for key in FIELDS}


def merge_update(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body applied to a stored tool: the given fields replace the current ones.

    An `auth` of the stored type given without its secret keeps the stored secret
    (the SDK's advice for a client that only has the scrubbed copy).
    """
    unknown = sorted(set(changes) - set(FIELDS) - READ_ONLY)
    if unknown:
        raise ValidationFailed(f"{unknown[0]}: unknown field for a tool")
    merged = {key: copy.deepcopy(current[key]) for key in FIELDS if key in current}
    merged.update(copy.deepcopy(changes))
    auth = _auth_of(merged.get("delivery"))
    old_auth = _auth_of(current.get("delivery"))
    if auth is not None and old_auth is not None and auth.get("type") == old_auth.get("type"):
        field = SECRET_FIELD.get(str(auth.get("type")))
        if field is not None and field not in auth and field in old_auth:
            auth[field] = old_auth[field]
    return merged


def _auth_of(delivery: Any) -> dict[str, Any] | None:
    api = delivery.get("api") if isinstance(delivery, dict) else None
    auth = api.get("auth") if isinstance(api, dict) else None
    return auth if isinstance(auth, dict) else None


def public_row(document: dict[str, Any]) -> dict[str, Any]:
    """A stored tool as every read shows it: `uuid` beside `tool_id`, secrets scrubbed."""
    tool_id = document["tool_id"]
    row: dict[str, Any] = {"tool_id": tool_id, "uuid": tool_id}
    row.update({key: copy.deepcopy(document.get(key)) for key in FIELDS})
    auth = _auth_of(row["delivery"])
    if auth is not None:
        field = SECRET_FIELD.get(str(auth.get("type")))
        if field is not None and field in auth:
            auth[field] = SCRUBBED
    row["is_system_tool"] = False
    row["created_at"] = document.get("created_at")
    row["updated_at"] = document.get("updated_at")
    return row


def _describe(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err.get("loc", ()))
    text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        text = "unknown field for a tool"
    return f"{loc}: {text}" if loc else text
