"""`GET /metrics`: Prometheus text format, scraped from a live server like Prometheus would."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

END_ROUTE = "/v2/conversations/{conversation_id}/end"
BOGUS_ID = "c000000000000000"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    r = httpx.get(f"{base_url}/metrics", timeout=10)  # no key
    assert r.status_code == 200, r.text
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str) -> list[str]:
    return [v for (n, labels), _ in samples.items() if n == name for _, v in labels]


def create(client: httpx.Client, **extra: Any) -> str:
    r = client.post("/v2/conversations", json={"replica_id": "r90bbd427f71", **extra})
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


def test_metrics_needs_no_key_and_is_prometheus_text(server) -> None:
    r = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(r.text)}
    assert {
        "palaver_http_requests",
        "palaver_conversations",
        "palaver_conversation_endings",
        "palaver_webhook_deliveries",
        "palaver_webhook_attempts",
        "palaver_webhook_delivery_latency_seconds",
    } <= names


def test_ends_are_counted_by_route_template_and_status(server, client) -> None:
    before = scrape(server.base_url)
    ids = [create(client) for _ in range(3)]
    for cid in ids:
        assert client.post(f"/v2/conversations/{cid}/end").status_code == 200
    assert client.post(f"/v2/conversations/{ids[0]}/end").status_code == 200  # again: still a 200
    assert client.post(f"/v2/conversations/{BOGUS_ID}/end").status_code == 400
    assert httpx.post(f"{server.base_url}/v2/conversations/{BOGUS_ID}/end", timeout=10).status_code == 401  # no key
    assert client.get(f"/v2/conversations/{ids[0]}").status_code == 200
    after = scrape(server.base_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "palaver_http_requests_total"
    assert delta(requests, route=END_ROUTE, method="POST", status="200") == 4
    assert delta(requests, route=END_ROUTE, method="POST", status="400") == 1
    assert delta(requests, route=END_ROUTE, method="POST", status="401") == 1
    assert delta(requests, route="/v2/conversations", method="POST", status="200") == 3
    assert delta(requests, route="/v2/conversations/{conversation_id}", method="GET", status="200") == 1
    # The template, never the raw path: no id in any label value.
    for label in label_values(after, requests):
        assert BOGUS_ID not in label and not any(cid in label for cid in ids), label

    assert delta("palaver_conversations", status="ended") >= 3
    assert delta("palaver_conversation_endings_total", reason="end_conversation_endpoint_hit") == 3


def test_requests_outside_any_route_are_unmatched(server) -> None:
    before = scrape(server.base_url)
    assert httpx.get(f"{server.base_url}/no/such/page/c1234567890abcde", timeout=10).status_code == 404
    after = scrape(server.base_url)
    labels = dict(route="unmatched", method="GET", status="404")
    assert value(after, "palaver_http_requests_total", **labels) - value(
        before, "palaver_http_requests_total", **labels
    ) == 1
    assert not any("c1234567890abcde" in v for v in label_values(after, "palaver_http_requests_total"))


# ---------------------------------------------------------------------------- webhooks


def test_webhook_deliveries_attempts_and_latency(server_factory, receiver) -> None:
    srv = server_factory(name="metrics-webhooks", extra_args=("--allow-private-callbacks",))
    receiver.plan["/flaky"] = [(503, {})]  # the first attempt there is retried (after 0.5-1 s), then delivered
    receiver.default["/reject"] = 400  # never retried: failed at once
    with srv.client(srv.shown_once_key) as client:
        for path in ("/ok", "/flaky", "/reject"):
            cid = create(client, callback_url=receiver.url(path))
            assert client.post(f"/v2/conversations/{cid}/end").status_code == 200

    # Three lifecycle webhooks per conversation: 6 delivered, 3 failed, after 10 attempts.
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(srv.base_url)
        settled = value(samples, "palaver_webhook_deliveries", status="pending") == 0
        # An attempt is counted just after it is stored: wait for the last count too.
        if settled and value(samples, "palaver_webhook_delivery_latency_seconds_count") >= 10:
            break
        assert time.monotonic() < deadline, {k: v for k, v in samples.items() if "webhook" in k[0]}
        time.sleep(0.1)
    assert value(samples, "palaver_webhook_deliveries", status="delivered") == 6
    assert value(samples, "palaver_webhook_deliveries", status="failed") == 3
    assert value(samples, "palaver_webhook_attempts_total", outcome="delivered") == 6
    assert value(samples, "palaver_webhook_attempts_total", outcome="retry") == 1
    assert value(samples, "palaver_webhook_delivery_latency_seconds_count") == 10
    assert 0 < value(samples, "palaver_webhook_delivery_latency_seconds_sum") < 10
    assert value(samples, "palaver_webhook_delivery_latency_seconds_bucket", le="+Inf") == 10
