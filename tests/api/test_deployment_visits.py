"""A deployment's public side: the landing page, the embed script, a visitor's start, limits, origins, status.

Visitors have no API key. Each limit is checked through `POST /deployments/{id}/conversations`,
and concurrent clicks must not overshoot one, on either backend.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import httpx
import pytest

STOCK_PAL = "pcb7a34da5fe"  # Tavus SDR, with a default face


def deploy(c, **fields) -> dict:
    body = {"pal_id": STOCK_PAL, "channel": "landing-page", "name": "Visits", **fields}
    r = c.post("/v2/deployments", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def start(server, did: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.base_url}/deployments/{did}/conversations", timeout=30, **kwargs)


def started(server, did: str, **kwargs) -> dict:
    r = start(server, did, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def stored_request(server, cid: str) -> dict:
    request = server.stored_conversation(cid)["request"]
    return json.loads(request) if isinstance(request, str) else request


def test_landing_page_shows_the_deployment_and_sets_the_visitor_cookie(client, server) -> None:
    did = deploy(client, customization={"landing_page": {
        "title": "Meet <Sam>", "description": "Ask us & we answer.", "logo": "data:image/png;base64,iVBORw0KGgo=",
        "cta": [{"title": "Pricing", "url": "https://example.com/pricing?a=1&b=2"}]}})["deployment_id"]  # fmt: skip
    r = httpx.get(f"{server.base_url}/deployments/{did}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<title>Meet &lt;Sam&gt;</title>" in page and '<h1 id="title">Meet &lt;Sam&gt;</h1>' in page
    assert "Ask us &amp; we answer." in page and "Tavus SDR" in page
    assert '<a href="https://example.com/pricing?a=1&amp;b=2" rel="noopener">Pricing</a>' in page
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in page and ">Start conversation</button>" in page
    assert r.headers["content-security-policy"] == "frame-ancestors *"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("palaver_visitor=") and "HttpOnly" in cookie and "Path=/deployments" in cookie
    assert "samesite=lax" in cookie.lower()
    again = httpx.get(f"{server.base_url}/deployments/{did}", cookies={"palaver_visitor": "a" * 24})
    assert "set-cookie" not in again.headers
    framed = deploy(client, allowed_origins=["https://www.example.com"])["deployment_id"]
    csp = httpx.get(f"{server.base_url}/deployments/{framed}").headers["content-security-policy"]
    assert csp == "frame-ancestors 'self' https://www.example.com"


def test_pages_that_are_not_served(client, server) -> None:
    embed = deploy(client, channel="embed")["deployment_id"]
    landing = deploy(client)["deployment_id"]
    inactive = deploy(client, status="inactive")["deployment_id"]
    draft = deploy(client, status="draft", channel="widget")["deployment_id"]
    cases = [(f"/deployments/{embed}", 404, "it lives on its own site"),
             ("/deployments/d0000000000000000", 404, "There is no such deployment"),
             (f"/deployments/{inactive}", 403, "This deployment is inactive")]  # fmt: skip
    for path, status, text in cases:
        r = httpx.get(server.base_url + path)
        assert r.status_code == status and r.headers["content-type"].startswith("text/html") and text in r.text, path
    for path in (f"/deployments/{landing}/embed.js", "/deployments/d0000000000000000/embed.js"):
        r = httpx.get(server.base_url + path)
        assert r.status_code == 404 and "No such embed" in r.text, path
    r = httpx.get(f"{server.base_url}/deployments/{draft}/embed.js")  # a script that says so, not one that fails
    assert r.status_code == 200 and '"available": false' in r.text and "not available right now" in r.text


def test_embed_script_carries_the_deployment(client, server) -> None:
    did = deploy(client, channel="widget", allowed_origins=["https://shop.example.com"])["deployment_id"]
    r = httpx.get(f"{server.base_url}/deployments/{did}/embed.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["access-control-allow-origin"] == "*"
    assert f'"endpoint": "{server.base_url}/deployments/{did}/conversations"' in r.text
    assert '"channel": "widget"' in r.text and '"available": true' in r.text and "/*CONFIG*/" not in r.text


def test_a_start_is_a_conversation_of_the_deployments_account_with_its_settings(
    client, server, make_client, new_account
) -> None:
    context = "The visitor came from the spring campaign."
    settings = {"conversation": {"context": context, "unique_memory_tag": False}}
    did = deploy(client, limits={"max_call_duration": 600}, customization=settings)["deployment_id"]
    answer = started(server, did)
    cid = answer["conversation_id"]
    assert answer == {"conversation_id": cid, "conversation_url": f"{server.base_url}/rooms/{cid}", "status": "active"}
    conversation = client.get(f"/v2/conversations/{cid}").json()
    assert conversation["status"] == "active" and conversation["persona_id"] == STOCK_PAL
    assert conversation["replica_id"] == "r90bbd427f71" and conversation["conversation_name"] == "Visits"
    assert make_client(new_account()).get(f"/v2/conversations/{cid}").status_code == 400  # another account's
    assert stored_request(server, cid) == {"pal_id": STOCK_PAL, "conversation_name": "Visits",
                                           "conversational_context": context,
                                           "properties": {"max_call_duration": 600}, "memory_stores": [did],
                                           "deployment_id": did}  # fmt: skip
    assert server.stored_conversation(cid)["max_call_duration"] == 600
    client.post(f"/v2/conversations/{cid}/end")
    events = client.get(f"/v2/conversations/{cid}", params={"verbose": "true"}).json()["events"]
    transcript = next(e for e in events if e["event_type"] == "application.transcription_ready")
    assert context in transcript["properties"]["transcript"][0]["content"]
    shown = client.get(f"/v2/deployments/{did}").json()
    assert (shown["usage_today"], shown["usage_total"]) == (1, 1)


def test_a_memory_per_visitor(client, server) -> None:
    did = deploy(client, customization={"conversation": {"unique_memory_tag": True}})["deployment_id"]
    a = started(server, did, cookies={"palaver_visitor": "a" * 24})["conversation_id"]
    b = started(server, did, cookies={"palaver_visitor": "b" * 24})["conversation_id"]
    stores_a, stores_b = stored_request(server, a)["memory_stores"], stored_request(server, b)["memory_stores"]
    assert stores_a != stores_b and all(s[0].startswith(f"{did}:v") for s in (stores_a, stores_b))
    assert "conversational_context" not in stored_request(server, a)


def test_daily_call_limit(client, server) -> None:
    did = deploy(client, limits={"daily_call_limit": 2})["deployment_id"]
    for visitor in ("a", "b"):
        started(server, did, cookies={"palaver_visitor": visitor * 24})
    r = start(server, did, cookies={"palaver_visitor": "c" * 24})
    assert r.status_code == 429 and r.json()["limit"] == "daily_call_limit"
    assert r.json()["error"].startswith("No more conversations today: the limit of 2 conversations a day")
    assert client.get(f"/v2/deployments/{did}").json()["usage_today"] == 2


def test_daily_call_limit_per_user(client, server) -> None:
    did = deploy(client, channel="embed", limits={"daily_call_limit_per_user": 1})["deployment_id"]
    started(server, did, cookies={"palaver_visitor": "a" * 24})
    r = start(server, did, cookies={"palaver_visitor": "a" * 24})
    assert r.status_code == 429 and r.json()["limit"] == "daily_call_limit_per_user"
    assert "limit of 1 conversation a day per visitor" in r.json()["error"]
    started(server, did, cookies={"palaver_visitor": "b" * 24})
    # An embed's visitor id (kept in its site's storage), then the client address as a last resort.
    started(server, did, json={"visitor_id": "embedvisitor1"})
    assert start(server, did, json={"visitor_id": "embedvisitor1"}).status_code == 429
    started(server, did)
    assert start(server, did).json()["limit"] == "daily_call_limit_per_user"


def test_concurrent_call_limit_frees_a_slot_when_a_conversation_ends(client, server) -> None:
    did = deploy(client, limits={"concurrent_call_limit": 1})["deployment_id"]
    first = started(server, did)["conversation_id"]
    r = start(server, did)
    assert r.status_code == 429 and r.json()["limit"] == "concurrent_call_limit"
    assert "limit of 1 conversation at once" in r.json()["error"]
    assert client.post(f"/v2/conversations/{first}/end").status_code == 200
    started(server, did)


@pytest.mark.parametrize(("limit", "allowed"), [("daily_call_limit", 4), ("concurrent_call_limit", 3)])
def test_concurrent_clicks_do_not_overshoot_a_limit(client, server, limit, allowed) -> None:
    did = deploy(client, limits={limit: allowed})["deployment_id"]
    barrier = threading.Barrier(12)
    answers: list[httpx.Response] = []

    def click(n: int) -> None:
        barrier.wait()
        answers.append(start(server, did, cookies={"palaver_visitor": f"visitor{n:04d}"}))

    threads = [threading.Thread(target=click, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(r.status_code for r in answers) == {200: allowed, 429: 12 - allowed}
    assert {r.json()["limit"] for r in answers if r.status_code == 429} == {limit}
    ids = {r.json()["conversation_id"] for r in answers if r.status_code == 200}
    for cid in ids:
        assert client.get(f"/v2/conversations/{cid}").json()["status"] == "active"
    assert client.get(f"/v2/deployments/{did}").json()["usage_today"] == allowed


def test_allowed_origins(client, server) -> None:
    did = deploy(client, channel="embed", allowed_origins=["https://shop.example.com", "https://*.example.org"])[
        "deployment_id"
    ]
    for origin in ("https://shop.example.com", "https://a.b.example.org", server.base_url):
        r = start(server, did, headers={"Origin": origin})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin, (origin, r.text)
    for origin in ("https://evil.example.com", "https://example.org", "http://shop.example.com", "null"):
        r = start(server, did, headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.text)
        refusal = f"This site ({origin}) is not allowed to start conversations with this deployment."
        assert r.json() == {"error": refusal}
        assert r.headers["access-control-allow-origin"] == origin  # so that the page can show why
    assert start(server, did).status_code == 200  # not a browser: nothing to check
    anywhere = deploy(client, channel="widget", allowed_origins=[])["deployment_id"]
    assert start(server, anywhere, headers={"Origin": "https://any.example.net"}).status_code == 200
    r = httpx.options(f"{server.base_url}/deployments/{did}/conversations",
                      headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST",
                               "Access-Control-Request-Headers": "content-type"})  # fmt: skip
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert r.headers["access-control-allow-methods"] == "POST"
    assert r.headers["access-control-allow-headers"].lower() == "content-type"


def test_only_active_deployments_start_conversations(client, server) -> None:
    made = deploy(client, status="draft")
    did = made["deployment_id"]
    r = start(server, did)
    assert (r.status_code, r.json()) == (403, {"error": "This deployment is draft: it does not start conversations "
                                                        "right now."})  # fmt: skip
    client.patch(f"/v2/deployments/{did}", json=[{"op": "replace", "path": "/status", "value": "inactive"}])
    assert start(server, did).json()["error"].startswith("This deployment is inactive")
    client.patch(f"/v2/deployments/{did}", json={"status": "active"})
    started(server, did)
    client.delete(f"/v2/deployments/{did}")
    r = start(server, did)
    assert r.status_code == 404 and r.json()["error"].startswith("There is no such deployment")
    assert start(server, "not an id").status_code == 404


def test_a_start_that_cannot_create_its_conversation_is_not_counted(server, make_client, new_account) -> None:
    owner = make_client(new_account(max_concurrent=1))
    did = deploy(owner, limits={"daily_call_limit": 5})["deployment_id"]
    started(server, did)
    r = start(server, did)  # the account's own concurrency limit
    assert r.status_code == 429 and r.json()["limit"] == "account"
    assert owner.get(f"/v2/deployments/{did}").json()["usage_total"] == 1
    pal = owner.post("/v2/pals", json={"pal_name": "Gone", "system_prompt": "x", "default_face_id": "rfe12d8b9597"})
    gone = deploy(owner, pal_id=pal.json()["pal_id"])["deployment_id"]
    assert owner.delete(f"/v2/pals/{pal.json()['pal_id']}").status_code == 204
    r = start(server, gone)
    assert r.status_code == 409 and "PAL" in r.json()["error"]
    assert owner.get(f"/v2/deployments/{gone}").json()["usage_total"] == 0
