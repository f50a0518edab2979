"""/v2/deployments: create (200), get with ETag, 0-based list with `total` and filters, patch, delete, scoping.

The public side (landing page, embed script, a visitor's start and the limits) is in
test_deployment_visits.py.
"""

from __future__ import annotations

import pytest

STOCK_PAL = "pcb7a34da5fe"  # Tavus SDR, with a default face
FACELESS_STOCK_PAL = "pdac61133ac5"
LANDING = {
    "pal_id": STOCK_PAL,
    "channel": "landing-page",
    "name": "Spring launch",
    "status": "active",
    "limits": {"daily_call_limit": 50, "max_call_duration": 600},
    "customization": {
        "conversation": {"unique_memory_tag": False, "context": "The visitor came from the spring campaign."},
        "landing_page": {"title": "Meet our SDR", "description": "Ask anything about the product.",
                         "cta": [{"title": "Pricing", "url": "https://example.com/pricing"}]},
    },
}  # fmt: skip


def make(c, **fields):
    r = c.post("/v2/deployments", json={**LANDING, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def make_pal(c, name: str = "Guide") -> str:
    r = c.post("/v2/pals", json={"pal_name": name, "system_prompt": "You guide.", "default_face_id": "rfe12d8b9597"})
    assert r.status_code == 200, r.text
    return r.json()["pal_id"]


def test_create_is_200_with_the_documented_fields_and_reads_back(client, server) -> None:
    made = make(client)
    assert list(made) == ["deployment_id", "pal_id", "channel", "status", "name", "has_password", "allowed_origins",
                          "limits", "customization", "usage_today", "usage_total", "landing_page_url", "created_at",
                          "updated_at"]  # fmt: skip
    did = made["deployment_id"]
    assert did.startswith("d") and len(did) == 17
    assert made["pal_id"] == STOCK_PAL and made["channel"] == "landing-page" and made["status"] == "active"
    assert made["has_password"] is False and made["allowed_origins"] == []
    assert made["limits"] == LANDING["limits"] and made["customization"] == LANDING["customization"]
    assert made["usage_today"] == 0 and made["usage_total"] == 0
    assert made["landing_page_url"] == f"{server.base_url}/deployments/{did}"
    r = client.get(f"/v2/deployments/{did}")
    assert r.status_code == 200 and r.json() == made
    assert r.headers["etag"] == f'W/"{made["updated_at"]}"'


@pytest.mark.parametrize("channel", ["embed", "widget"])
def test_embed_and_widget_carry_a_snippet_and_normalised_origins(client, server, channel) -> None:
    origins = [
        "https://WWW.Example.com/",
        "https://shop.example.com:443",
        "http://127.0.0.1:8080",
        "https://*.example.org",
    ]
    made = make(client, channel=channel, allowed_origins=origins)
    assert made["allowed_origins"] == ["https://www.example.com", "https://shop.example.com", "http://127.0.0.1:8080",
                                       "https://*.example.org"]  # fmt: skip
    did = made["deployment_id"]
    script = f'<script src="{server.base_url}/deployments/{did}/embed.js" async></script>'
    assert "landing_page_url" not in made
    if channel == "embed":
        assert made["snippet"] == f'<palaver-embed deployment-id="{did}"></palaver-embed>\n{script}'
    else:
        assert made["snippet"] == script


def test_defaults_status_active_and_a_name_like_the_sdk_recipe(client) -> None:
    pal = make_pal(client, "Concierge")
    first = client.post("/v2/deployments", json={"pal_id": pal, "channel": "embed"}).json()
    second = client.post("/v2/deployments/", json={"pal_id": pal, "channel": "embed"}).json()
    widget = client.post("/v2/deployments", json={"pal_id": pal, "channel": "widget"}).json()
    assert (first["name"], second["name"], widget["name"]) == ("Concierge Embed", "Concierge Embed 2",
                                                               "Concierge Widget")  # fmt: skip
    assert first["status"] == "active" and first["limits"] == {} and first["customization"] == {}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"channel": "embed"}, "Invalid request: pal_id is required"),
        ({"pal_id": STOCK_PAL}, "Invalid request: channel is required"),
        ({"pal_id": STOCK_PAL, "channel": "tv"}, "channel"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "status": "live"}, "status"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "name": "  "}, "name must not be blank"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "name": "n" * 256}, "name"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "allowed_origins": ["https://a.com/path"]}, "allowed_origins"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "allowed_origins": ["example.com"]}, "allowed_origins"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "allowed_origins": "https://a.com"}, "allowed_origins"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "limits": {"daily_call_limit": 0}}, "limits.daily_call_limit"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "limits": {"concurrent_call_limit": "3"}}, "concurrent_call_limit"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "limits": {"max_call_duration": True}}, "max_call_duration"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "limits": {"max_call_duration": 86_401}}, "max_call_duration"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "limits": {"calls": 3}}, "limits.calls: unknown field"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "customization": {"conversation": {"context": 5}}}, "context"),
        ({"pal_id": STOCK_PAL, "channel": "landing-page",
          "customization": {"landing_page": {"cta": [{"title": "x", "url": "javascript:alert(1)"}]}}}, "cta.0.url"),
        ({"pal_id": STOCK_PAL, "channel": "landing-page",
          "customization": {"landing_page": {"logo": "javascript:alert(1)"}}}, "logo"),
        ({"pal_id": STOCK_PAL, "channel": "landing-page",
          "customization": {"landing_page": {"titel": "typo"}}}, "landing_page.titel: unknown field"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "password": "s3cret"}, "not supported"),
        ({"pal_id": STOCK_PAL, "channel": "embed", "owner": "me"}, "owner: unknown field"),
        ({"pal_id": FACELESS_STOCK_PAL, "channel": "embed"}, "has no default_face_id"),
    ],
)  # fmt: skip
def test_create_rules(client, body, text) -> None:
    r = client.post("/v2/deployments", json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}
    assert r.json()["error"].startswith("Invalid request: ") and text in r.json()["error"]


def test_pal_must_be_the_callers_own_or_stock(client, make_client, new_account) -> None:
    foreign = make_pal(make_client(new_account()))
    for pal_id in (foreign, "p000000000000", "../x"):
        r = client.post("/v2/deployments", json={"pal_id": pal_id, "channel": "embed"})
        assert (r.status_code, r.json()) == (400, {"error": "Invalid pal_id"})
    assert make(client, pal_id=make_pal(client))["status"] == "active"


def test_customization_keeps_keys_palaver_does_not_use(client) -> None:
    made = make(client, customization={"theme": {"accent": "#ff0000"}, "conversation": {"context": "c"}})
    assert made["customization"] == {"theme": {"accent": "#ff0000"}, "conversation": {"context": "c"}}


def test_list_pages_from_zero_with_total_and_filters(new_account, make_client) -> None:
    c = make_client(new_account())
    pal = make_pal(c)
    kinds = [("landing-page", STOCK_PAL, "active"), ("embed", pal, "active"), ("widget", pal, "inactive"),
             ("embed", STOCK_PAL, "draft"), ("embed", pal, "active")]  # fmt: skip
    made = [make(c, name=f"d{i}", channel=ch, pal_id=pid, status=status) for i, (ch, pid, status) in enumerate(kinds)]
    ids = [d["deployment_id"] for d in reversed(made)]  # newest first
    r = c.get("/v2/deployments", params={"limit": 2, "page": 0})
    body = r.json()
    assert r.status_code == 200 and body["total"] == 5 and body["total_count"] == 5
    assert [d["deployment_id"] for d in body["data"]] == ids[:2]
    assert [d["deployment_id"] for d in c.get("/v2/deployments?limit=2&page=2").json()["data"]] == ids[4:]
    assert c.get("/v2/deployments?limit=2&page=3").json()["data"] == []
    assert [d["deployment_id"] for d in c.get("/v2/deployments/?sort=asc&limit=200").json()["data"]] == ids[::-1]

    def names(**params) -> list[str]:
        answer = c.get("/v2/deployments", params={**params, "limit": 100}).json()
        assert answer["total"] == len(answer["data"])
        return sorted(d["name"] for d in answer["data"])

    assert names(pal_id=pal) == ["d1", "d2", "d4"]
    assert names(channel="embed") == ["d1", "d3", "d4"]
    assert names(status="active") == ["d0", "d1", "d4"]
    assert names(pal_id=pal, channel="embed", status="active") == ["d1", "d4"]
    assert names(include_thumbnails="false", channel="widget") == ["d2"]  # the CLI's extra parameter is accepted
    for bad in ({"channel": "tv"}, {"status": "live"}, {"page": -1}, {"limit": 0}, {"limit": 1001}):
        r = c.get("/v2/deployments", params=bad)
        assert r.status_code == 400 and "error" in r.json(), (bad, r.text)


def test_json_patch_merge_patch_and_ignored_server_fields(client) -> None:
    made = make(client)
    did = made["deployment_id"]
    r = client.patch(f"/v2/deployments/{did}", json=[
        {"op": "replace", "path": "/status", "value": "inactive"},
        {"op": "add", "path": "/limits/concurrent_call_limit", "value": 2},
        {"op": "replace", "path": "/customization/landing_page/title", "value": "New title"},
        {"op": "replace", "path": "/usage_total", "value": 99},
        {"op": "replace", "path": "/deployment_id", "value": "dother"},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["deployment_id"] == did and patched["usage_total"] == 0 and patched["status"] == "inactive"
    assert patched["limits"] == {**LANDING["limits"], "concurrent_call_limit": 2}
    assert patched["customization"]["landing_page"]["title"] == "New title"
    assert patched["created_at"] == made["created_at"] and patched["updated_at"] >= made["updated_at"]
    assert client.get(f"/v2/deployments/{did}").json() == patched
    # A plain object is a merge patch: nested objects merge, null removes.
    r = client.patch(f"/v2/deployments/{did}", json={"status": "active", "limits": {"daily_call_limit": None},
                                                     "allowed_origins": ["https://a.example"]})  # fmt: skip
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["status"] == "active" and merged["allowed_origins"] == ["https://a.example"]
    assert merged["limits"] == {"max_call_duration": 600, "concurrent_call_limit": 2}
    assert merged["customization"]["landing_page"]["title"] == "New title"
    # Removing the name gives the default one back.
    r = client.patch(f"/v2/deployments/{did}", json=[{"op": "remove", "path": "/name"}])
    assert r.status_code == 200 and r.json()["name"].startswith("Tavus SDR Link")


def test_patch_errors(client, make_client, new_account) -> None:
    did = make(client)["deployment_id"]
    for body in ([], {}, "x", [{"op": "replace", "path": "/status"}], [{"op": "jump", "path": "/status"}]):
        r = client.patch(f"/v2/deployments/{did}", json=body)
        assert (r.status_code, r.json()) == (422, {"message": "Invalid JSON patch format"}), body
    r = client.patch(f"/v2/deployments/{did}", json=[{"op": "test", "path": "/status", "value": "draft"}])
    assert r.status_code == 422 and r.json()["message"].startswith("JSON patch could not be applied")
    for body, text in (([{"op": "replace", "path": "/channel", "value": "tv"}], "channel"),
                       ({"limits": {"daily_call_limit": 0}}, "daily_call_limit"),
                       ({"owner": "me"}, "owner: unknown field"),
                       ({"pal_id": FACELESS_STOCK_PAL}, "has no default_face_id")):  # fmt: skip
        r = client.patch(f"/v2/deployments/{did}", json=body)
        assert r.status_code == 400 and text in r.json()["error"], (body, r.text)
    foreign = make_pal(make_client(new_account()))
    r = client.patch(f"/v2/deployments/{did}", json={"pal_id": foreign})
    assert (r.status_code, r.json()) == (400, {"error": "Invalid pal_id"})
    assert client.get(f"/v2/deployments/{did}").json()["pal_id"] == STOCK_PAL


def test_if_match(client) -> None:
    did = make(client)["deployment_id"]
    tag = client.get(f"/v2/deployments/{did}").headers["etag"]
    r = client.patch(f"/v2/deployments/{did}", json={"name": "A"}, headers={"If-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag
    r = client.patch(f"/v2/deployments/{did}", json={"name": "B"}, headers={"If-Match": tag})
    assert r.status_code == 412 and "If-Match" in r.json()["error"]
    assert client.get(f"/v2/deployments/{did}").json()["name"] == "A"


def test_delete_is_204_then_404(client) -> None:
    did = make(client)["deployment_id"]
    r = client.delete(f"/v2/deployments/{did}")
    assert r.status_code == 204 and r.content == b""
    for method in ("GET", "DELETE", "PATCH"):
        r = client.request(method, f"/v2/deployments/{did}", json={"name": "x"} if method == "PATCH" else None)
        assert (r.status_code, r.json()) == (404, {"error": "Deployment not found"}), method
    assert client.get(f"/deployments/{did}").status_code == 404


def test_unknown_malformed_and_foreign_ids_are_404(client, make_client, new_account) -> None:
    other = make_client(new_account())
    did = make(client)["deployment_id"]
    for c, deployment_id in ((other, did), (client, "d0000000000000000"), (client, "bad%20id"), (client, "x" * 65)):
        for method in ("GET", "PATCH", "DELETE"):
            r = c.request(method, f"/v2/deployments/{deployment_id}", json={"name": "x"} if method == "PATCH" else None)
            assert (r.status_code, r.json()) == (404, {"error": "Deployment not found"}), (method, deployment_id)
    assert other.get("/v2/deployments").json()["total"] == 0
    assert client.get(f"/v2/deployments/{did}").json()["name"] == "Spring launch"


def test_needs_a_key(make_client) -> None:
    anonymous = make_client()
    for method, path in (("POST", "/v2/deployments"), ("GET", "/v2/deployments"), ("GET", "/v2/deployments/dx")):
        r = anonymous.request(method, path)
        assert (r.status_code, r.json()) == (401, {"message": "Invalid access token"})
