"""Deployments in a real browser: the landing page starts a conversation and opens its room; a limit shows on
the page; the embed and the widget work on a site of another origin that is allowed, and say why on one that
is not."""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.sync_api import Page, expect

STOCK_PAL = "pcb7a34da5fe"  # Tavus SDR, with a default face
LOGO = "data:image/svg+xml," + quote('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"/>')


def deploy(c, **fields) -> dict:
    r = c.post("/v2/deployments", json={"pal_id": STOCK_PAL, "name": "Browser", **fields})
    assert r.status_code == 200, r.text
    return r.json()


def active_conversations(c) -> list[str]:
    listed = c.get("/v2/conversations", params={"status": "active", "limit": 100}).json()["data"]
    return [conversation["conversation_id"] for conversation in listed]


def host_page(title: str, snippet: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{snippet}</body></html>"


def test_landing_page_starts_a_conversation_and_then_shows_the_daily_limit(
    page: Page, server, make_client, new_account
) -> None:
    owner = make_client(new_account())
    made = deploy(owner, channel="landing-page", limits={"daily_call_limit": 1}, customization={"landing_page": {
        "title": "Meet our SDR", "description": "Ask anything about the product.", "logo": LOGO,
        "cta": [{"title": "Pricing", "url": "https://example.com/pricing"}]}})  # fmt: skip
    page.goto(made["landing_page_url"])
    expect(page).to_have_title("Meet our SDR")
    expect(page.locator("#title")).to_have_text("Meet our SDR")
    expect(page.locator("#description")).to_have_text("Ask anything about the product.")
    expect(page.locator("#pal-name")).to_have_text("Tavus SDR")
    expect(page.get_by_role("link", name="Pricing")).to_have_attribute("href", "https://example.com/pricing")
    expect(page.locator("#logo")).to_be_visible()

    page.get_by_role("button", name="Start conversation").click()
    page.wait_for_url(re.compile(r"/rooms/c[0-9a-f]+$"))
    conversation_id = page.url.rsplit("/", 1)[1]
    assert page.url == f"{server.base_url}/rooms/{conversation_id}"
    assert active_conversations(owner) == [conversation_id]

    page.goto(made["landing_page_url"])
    page.get_by_role("button", name="Start conversation").click()
    expect(page.locator("#message")).to_contain_text("the limit of 1 conversation a day has been reached")
    expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
    assert page.url == made["landing_page_url"]
    assert active_conversations(owner) == [conversation_id]


def test_embed_on_an_allowed_site_opens_the_room_inline(page: Page, server, static_site, make_client, new_account):
    owner = make_client(new_account())
    made = deploy(owner, channel="embed", allowed_origins=[static_site.url])
    static_site.pages["/allowed-embed.html"] = host_page("A shop", made["snippet"])
    page.goto(f"{static_site.url}/allowed-embed.html")
    embed = page.locator(f'palaver-embed[deployment-id="{made["deployment_id"]}"]')
    expect(embed.locator(".title")).to_have_text("Tavus SDR")
    embed.get_by_role("button", name="Start conversation").click()
    frame = embed.locator("iframe")
    expect(frame).to_have_attribute("src", re.compile(rf"^{re.escape(server.base_url)}/rooms/c[0-9a-f]+$"))
    conversation_id = embed.get_attribute("data-conversation-id")
    assert frame.get_attribute("src") == f"{server.base_url}/rooms/{conversation_id}"
    assert active_conversations(owner) == [conversation_id]
    expect(embed.get_by_role("link", name="Open in a new tab")).to_have_attribute("href", frame.get_attribute("src"))


def test_embed_on_a_site_that_is_not_allowed_says_so(page: Page, static_site, make_client, new_account) -> None:
    owner = make_client(new_account())
    made = deploy(owner, channel="embed", allowed_origins=["https://shop.example.com"])
    static_site.pages["/refused-embed.html"] = host_page("Another site", made["snippet"])
    page.goto(f"{static_site.url}/refused-embed.html")
    embed = page.locator("palaver-embed")
    embed.get_by_role("button", name="Start conversation").click()
    expect(embed.locator(".message")).to_have_text(
        f"This site ({static_site.url}) is not allowed to start conversations with this deployment."
    )
    expect(embed.locator("iframe")).to_have_count(0)
    assert active_conversations(owner) == []


def test_widget_is_a_floating_bubble_that_opens_the_room(page: Page, server, static_site, make_client, new_account):
    owner = make_client(new_account())
    made = deploy(owner, channel="widget", allowed_origins=[static_site.url])
    static_site.pages["/widget.html"] = host_page("A blog", made["snippet"])
    page.goto(f"{static_site.url}/widget.html")
    widget = page.locator("palaver-widget")
    bubble = widget.get_by_role("button", name="Talk with Tavus SDR")
    expect(bubble).to_have_css("position", "fixed")
    start = widget.get_by_role("button", name="Start conversation")
    expect(start).to_be_hidden()
    bubble.click()
    start.click()
    expect(widget.locator("iframe")).to_have_attribute("src", re.compile(r"/rooms/c[0-9a-f]+$"))
    assert active_conversations(owner) == [widget.get_attribute("data-conversation-id")]
