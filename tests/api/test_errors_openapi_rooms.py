"""Routing errors, the OpenAPI document and the room page."""

from __future__ import annotations

import html

import httpx
import pytest


def is_json(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").split(";")[0].strip() == "application/json"


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize("path", ["/v2/no-such-route", "/v2/conversations/c000000000000000/end/extra",
                                  "/v2/personas-that-do-not-exist", "/no-such-route"])
def test_unknown_route_with_valid_key_is_404_json(client, path):
    r = client.get(path)
    assert r.status_code == 404, r.text
    assert is_json(r), r.headers.get("content-type")
    assert isinstance(r.json().get("error"), str), r.json()


@pytest.mark.parametrize(
    "method, path",
    [("PUT", "/v2/conversations"), ("PATCH", "/v2/conversations"), ("DELETE", "/v2/conversations"),
     ("PUT", "/v2/conversations/c000000000000000"), ("GET", "/v2/conversations/c000000000000000/end"),
     ("DELETE", "/v2/conversations/c000000000000000/end")],
)
def test_wrong_method_is_405_json(client, method, path):
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert is_json(r), r.headers.get("content-type")
    assert isinstance(r.json(), dict)


def test_no_traceback_on_odd_inputs(server, api_key):
    """A grab bag of odd requests; the client's response hook fails on any 5xx or traceback."""
    odd = [
        ("POST", "/v2/conversations", {"content": b"\x00\x01\x02", "headers": {"content-type": "application/json"}}),
        ("POST", "/v2/conversations", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("POST", "/v2/conversations", {"content": b"a=b", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("POST", "/v2/conversations", {"json": {"replica_id": "r90bbd427f71", "properties": {"max_call_duration": 10**30}}}),
        ("POST", "/v2/conversations", {"json": {"replica_id": "r90bbd427f71", "max_participants": 10**30}}),
        ("POST", "/v2/conversations", {"json": {"replica_id": "r90bbd427f71", "conversation_name": "\u0000"}}),
        ("POST", "/v2/conversations", {"json": {"replica_id": "r90bbd427f71" * 1000}}),
        ("POST", "/v2/conversations", {"json": {"replica_id": None}}),
        ("POST", "/v2/conversations", {"content": b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                       "headers": {"content-type": "application/json"}}),
        ("GET", "/v2/conversations?limit=99999999999999999999999", {}),
        ("GET", "/v2/conversations?page=99999999999999999999999", {}),
        ("GET", "/v2/conversations?limit=1&limit=2", {}),
        ("GET", "/v2/conversations/c000000000000000?verbose=maybe", {}),
        ("GET", "/v2/conversations/%C0%AF", {}),
        ("DELETE", "/v2/conversations/c000000000000000?hard=maybe", {}),
    ]
    failures = []
    for method, path, kwargs in odd:
        label = f"{method} {path} {str(kwargs)[:80]}"
        with server.client(api_key) as client:  # fresh connection: a 500 may drop it
            try:
                r = client.request(method, path, **kwargs)
            except AssertionError as exc:  # raised by the client's no-5xx hook
                failures.append(f"{label}: {str(exc).splitlines()[0]}")
                continue
        if r.status_code >= 400 and not is_json(r):
            failures.append(f"{label}: non-JSON error {r.status_code} {r.headers.get('content-type')}")
    assert not failures, "\n".join(failures)


# -------------------------------------------------------------------- OpenAPI


@pytest.fixture(scope="module")
def openapi(server) -> dict:
    r = httpx.get(f"{server.base_url}/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def _resolve(doc: dict, node: dict) -> dict:
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        seen += 1
        assert seen < 20
    return node


def _response_properties(doc: dict, operation: dict, status: str) -> set[str]:
    response = _resolve(doc, operation["responses"][status])
    schema = _resolve(doc, response["content"]["application/json"]["schema"])
    props = set(schema.get("properties", {}))
    for combo in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(combo, []):
            props |= set(_resolve(doc, sub).get("properties", {}))
    return props


def test_openapi_and_docs_need_no_key(server):
    r = httpx.get(f"{server.base_url}/openapi.json")
    assert r.status_code == 200
    assert r.json()["openapi"].startswith("3.")
    docs = httpx.get(f"{server.base_url}/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers.get("content-type", "")


def test_openapi_lists_conversation_routes(openapi):
    paths = openapi["paths"]
    assert "post" in paths["/v2/conversations"]
    assert "get" in paths["/v2/conversations"]
    assert {"get", "delete"} <= set(paths["/v2/conversations/{conversation_id}"])
    assert "post" in paths["/v2/conversations/{conversation_id}/end"]


def test_openapi_documents_end_error_bodies(openapi):
    op = openapi["paths"]["/v2/conversations/{conversation_id}/end"]["post"]
    assert "200" in op["responses"]
    assert "error" in _response_properties(openapi, op, "400")
    assert "message" in _response_properties(openapi, op, "401")


def test_openapi_declares_api_key_security(openapi):
    schemes = openapi.get("components", {}).get("securitySchemes", {})
    api_keys = [s for s in schemes.values() if s.get("type") == "apiKey"]
    assert any(s.get("in") == "header" and s.get("name", "").lower() == "x-api-key" for s in api_keys), schemes


# ---------------------------------------------------------------------- rooms


def test_room_page_shows_name_and_status(client):
    name = "Room page check 4711"
    conv = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "conversation_name": name}).json()
    r = httpx.get(conv["conversation_url"])  # no key
    assert r.status_code == 200, r.text
    assert r.headers.get("content-type", "").startswith("text/html")
    assert name in r.text
    assert "active" in r.text
    assert client.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200
    r = httpx.get(conv["conversation_url"])
    assert r.status_code == 200
    assert name in r.text
    assert "ended" in r.text


def test_room_page_escapes_the_name(client):
    name = '<script>alert("x")</script>'
    conv = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "conversation_name": name}).json()
    r = httpx.get(conv["conversation_url"])
    assert r.status_code == 200
    assert name not in r.text
    assert html.escape(name, quote=False) in r.text or html.escape(name) in r.text


def test_room_page_loads_only_palavers_script(client):
    conv = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "persona_id": "pipecat0"}).json()
    r = httpx.get(conv["conversation_url"])
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script src="/static/room.js' in r.text and "<script>" not in r.text
    assert 'id="replica-name">Anna<' in r.text  # the stock replica's name, and its initials as the face
    assert 'class="avatar initials' in r.text and ">A</div>" in r.text
    assert "Pipecat echo persona" in r.text


def test_room_page_not_found_is_a_404_page(server):
    for cid in ("c0000000000000aa", "not-an-id"):
        r = httpx.get(f"{server.base_url}/rooms/{cid}")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert "No such room" in r.text and "Not found" in r.text


def test_ended_room_page_says_so_and_why(client):
    conv = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).json()
    assert client.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200
    r = httpx.get(conv["conversation_url"])
    assert "This conversation has ended. It was ended through the API." in r.text
    assert '<div id="call" class="call" hidden>' in r.text  # nothing to join


def test_room_state(client, server):
    conv = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).json()
    state = f"{conv['conversation_url']}/state"
    assert httpx.get(state).json() == {"status": "active", "shutdown_reason": None}
    assert client.post(f"/v2/conversations/{conv['conversation_id']}/end").status_code == 200
    assert httpx.get(state).json() == {"status": "ended", "shutdown_reason": "end_conversation_endpoint_hit"}
    assert httpx.get(f"{server.base_url}/rooms/c0000000000000aa/state").status_code == 404


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/static/room.js", "text/javascript"),
        ("/static/room.css", "text/css"),
        ("/static/palaver-call.js", "text/javascript"),
        ("/static/palaver-call.mjs", "text/javascript"),
        ("/static/examples/drop-in.html", "text/html"),
    ],
)
def test_static_files_need_no_key(server, path, kind):
    r = httpx.get(f"{server.base_url}{path}")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == kind
    assert r.headers.get("etag")


def test_unknown_static_file_is_404(server):
    for path in ("/static/nope.js", "/static/../app.py", "/static/%2e%2e/api/rooms.py"):
        assert httpx.get(f"{server.base_url}{path}").status_code == 404
