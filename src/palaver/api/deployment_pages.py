"""A deployment's public side: its landing page, its embed/widget script, and the start a visitor makes.

No API key, like `/rooms/...`: the deployment id in the URL is what a visitor
has (api/middleware.py only guards `/v2`).

* `GET /deployments/{id}`: a `landing-page` deployment's page (title, description,
  calls to action, logo, the PAL's name, a "Start conversation" button). The path
  is the SDK's own landing page link with `TAVUS_PAL_MAKER_URL` set to Palaver's
  public URL. It sets the first-party visitor cookie the per-visitor limit counts.
* `GET /deployments/{id}/embed.js`: an `embed` (inline) or `widget` (floating
  bubble) deployment's script, with its public settings inside.
* `POST /deployments/{id}/conversations`: starts a conversation and answers
  `{conversation_id, conversation_url, status}`; a refusal is JSON
  `{"error": "<a sentence for the visitor>"}` (403 origin or inactive, 404, 409,
  429 with `limit` naming the limit). Every origin gets CORS headers, so a page
  can read why it was refused: the refusal is the server's, not the browser's.

`allowed_origins` also becomes the landing page's `Content-Security-Policy:
frame-ancestors` (an empty list: any site may frame it).
"""

from __future__ import annotations

import html
import json
import re
import secrets
from importlib import resources
from string import Template
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from palaver.api.bodies import parse_json
from palaver.domain.deployment_usage import visitor_key
from palaver.domain.deployments import parse_origin
from palaver.service.deployment_visits import DeploymentVisits, Refusal
from palaver.service.deployments import DeploymentService
from palaver.storage.resources import ResourceRecord

router = APIRouter(tags=["Deployment pages"])

_FILES = resources.files("palaver.deployment_pages")
_LANDING = Template(_FILES.joinpath("landing.html").read_text(encoding="utf-8"))
_SCRIPT = _FILES.joinpath("embed.js").read_text(encoding="utf-8")
VISITOR_COOKIE = "palaver_visitor"
_VISITOR_ID = re.compile(r"[A-Za-z0-9_\-]{8,64}")
_HTML = {"content": {"text/html": {}}}
_JS = {"content": {"text/javascript": {}}}
_REFUSED = {"description": '`{"error": "..."}`, a sentence for the visitor', "content": {"application/json": {}}}


def _deployments(request: Request) -> DeploymentService:
    return request.app.state.deployments


def _visits(request: Request) -> DeploymentVisits:
    return _deployments(request).visits


def _notice(status: int, title: str, text: str) -> HTMLResponse:
    page = (
        '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title>"
        '<body style="font-family:system-ui,sans-serif;background:#101418;color:#e8eef2;display:grid;'
        'place-items:center;min-height:100vh;margin:0"><main style="max-width:32rem;text-align:center">'
        f'<h1 id="title">{html.escape(title)}</h1><p id="message">{html.escape(text)}</p></main></body></html>'
    )
    return HTMLResponse(page, status_code=status)


def _frame_ancestors(record: ResourceRecord) -> str:
    allowed = record.body["allowed_origins"]
    return "frame-ancestors " + (" ".join(["'self'", *allowed]) if allowed else "*")


@router.get(
    "/deployments/{deployment_id}",
    response_class=HTMLResponse,
    summary="A landing-page deployment's page (public)",
    responses={
        403: {"description": "The deployment is not active", **_HTML},
        404: {"description": "No such landing page", **_HTML},
    },  # fmt: skip
)
async def landing_page(request: Request, deployment_id: str) -> HTMLResponse:
    try:
        record = await _visits(request).active(deployment_id)
    except Refusal as refusal:
        return _notice(refusal.status, "Not available", refusal.message)
    body = record.body
    if body["channel"] != "landing-page":
        return _notice(404, "Not a landing page", f"This deployment is a {body['channel']}: it lives on its own site.")
    page = body["customization"].get("landing_page") or {}
    pal_name = await _visits(request).pal_name(record) or "this PAL"
    title = page.get("title") or body["name"]
    logo = page.get("logo")
    cta = "".join(
        f'<a href="{html.escape(button["url"])}" rel="noopener">{html.escape(button["title"])}</a>'
        for button in page.get("cta") or []
    )
    response = HTMLResponse(
        _LANDING.substitute(
            title=html.escape(title),
            description=html.escape(page.get("description") or ""),
            logo=f'<img class="logo" id="logo" src="{html.escape(logo)}" alt="">' if logo else "",
            pal_name=html.escape(pal_name),
            initial=html.escape(pal_name[:1].upper()),
            deployment_id=html.escape(record.resource_id),
            cta=f'<nav class="cta" id="cta">{cta}</nav>' if cta else "",
        ),
        headers={"Content-Security-Policy": _frame_ancestors(record), "Cache-Control": "no-store"},
    )
    if not _VISITOR_ID.fullmatch(request.cookies.get(VISITOR_COOKIE, "")):
        response.set_cookie(
            VISITOR_COOKIE,
            secrets.token_urlsafe(18),
            max_age=400 * 86_400,
            path="/deployments",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    return response


@router.get(
    "/deployments/{deployment_id}/embed.js",
    response_class=Response,
    summary="An embed or widget deployment's script (public)",
    responses={200: _JS, 404: {"description": "No such embed or widget", **_JS}},
)
async def embed_script(request: Request, deployment_id: str) -> Response:
    """The script a site's snippet loads. An inactive deployment still gets one (200), which shows why it
    cannot start a conversation: a browser runs no script answered with an error status."""
    record = await _visits(request).find(deployment_id)
    if record is None or record.body["channel"] == "landing-page":
        return _script(None, 404)
    body = record.body
    pal_name = await _visits(request).pal_name(record)
    config = {
        "deployment_id": record.resource_id,
        "channel": body["channel"],
        "endpoint": f"{_deployments(request).page_url(record.resource_id)}/conversations",
        "title": pal_name or body["name"],
        "available": body["status"] == "active",
        "message": "" if body["status"] == "active" else "This conversation is not available right now.",
    }
    return _script(config, 200)


def _script(config: dict[str, Any] | None, status: int) -> Response:
    text = "/* No such embed or widget deployment. */\n"
    if config is not None:
        literal = json.dumps(config, ensure_ascii=True).replace("<", "\\u003c")
        text = _SCRIPT.replace("/*CONFIG*/null", literal, 1)
    headers = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}
    return Response(text, status_code=status, media_type="text/javascript", headers=headers)


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _own_origins(request: Request) -> frozenset[str]:
    """This server's origins: its public URL's and the one this request reached (its own pages')."""
    found = {
        parse_origin(_deployments(request).public_url),
        parse_origin(f"{request.url.scheme}://{request.url.netloc}"),
    }
    return frozenset(origin for origin in found if origin is not None)


@router.options("/deployments/{deployment_id}/conversations", include_in_schema=False)
async def start_preflight(request: Request, deployment_id: str) -> Response:
    """CORS preflight for a site's JSON POST: allowed for every origin (the POST itself is checked)."""
    headers = {**_cors(request), "Access-Control-Allow-Methods": "POST",
               "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"}  # fmt: skip
    return Response(status_code=204, headers=headers)


@router.post(
    "/deployments/{deployment_id}/conversations",
    summary="Start a conversation through a deployment (public; its limits and allowed_origins apply)",
    responses={
        200: {"description": "`{conversation_id, conversation_url, status}`"},
        403: _REFUSED,
        404: _REFUSED,
        409: _REFUSED,
        429: {**_REFUSED, "description": '`{"error": "...", "limit": "daily_call_limit"}` and the like'},
    },
)
async def start(request: Request, deployment_id: str) -> JSONResponse:
    claimed = None
    try:
        data = await parse_json(request, empty={})
    except Exception:
        data = {}
    if isinstance(data, dict) and isinstance(data.get("visitor_id"), str) and _VISITOR_ID.fullmatch(data["visitor_id"]):
        claimed = data["visitor_id"]
    cookie = request.cookies.get(VISITOR_COOKIE)
    visitor = visitor_key(
        cookie=cookie if cookie and _VISITOR_ID.fullmatch(cookie) else None,
        claimed=claimed,
        address=request.client.host if request.client else None,
    )
    try:
        record = await _visits(request).start(
            deployment_id, visitor=visitor, origin=request.headers.get("origin"), own_origins=_own_origins(request)
        )
    except Refusal as refusal:
        answer: dict[str, Any] = {"error": refusal.message}
        if refusal.limit:
            answer["limit"] = refusal.limit
        return JSONResponse(answer, status_code=refusal.status, headers=_cors(request))
    conversations = request.app.state.conversations
    created = {
        "conversation_id": record.conversation_id,
        "conversation_url": conversations.conversation_url(record.conversation_id),
        "status": record.status,
    }
    return JSONResponse(created, headers=_cors(request))
