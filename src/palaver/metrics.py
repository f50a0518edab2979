"""Prometheus metrics, exposed by `GET /metrics` (api/metrics.py).

Two kinds, in one registry of Palaver's own (never prometheus_client's global
default, so nothing else registered in the process can clash with it):

* counted in this process since it started: HTTP requests (api/metrics.py);
* read from the databases at scrape time: conversations by status and endings
  by reason (`Storage.metrics_snapshot`), webhook deliveries by status, attempts
  by outcome and their latency (`DeliveryLedger.totals`, written by the delivery
  worker, a process of its own). These are right across restarts and across
  processes sharing the database.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from palaver.domain.conversation import ShutdownReason, Status
from palaver.domain.retry import ATTEMPT_OUTCOMES, DeliveryStatus
from palaver.storage.ledger import LATENCY_BUCKETS, LedgerTotals

# The classic text format. prometheus_client's CONTENT_TYPE_LATEST names
# version 1.0.0 in recent releases; every Prometheus version reads 0.0.4, and
# generate_latest writes exactly that for Palaver's (plain ASCII) names.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class RequestCounts:
    """`palaver_http_requests_total`: plain ints per (route, method, status), exported at scrape time.

    Counted on every request, the end fast path's included, so an increment is
    one dict update: no lock and no labelled child to resolve, as a
    prometheus_client Counter would cost (measured: ~0.4 µs more per request,
    about 1 % of an end). Safe without a lock because requests and scrapes
    all run on the event loop's thread.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}

    def add(self, route: str, method: str, status: int) -> None:
        if method not in _METHODS:
            method = "other"  # no unbounded label values, whatever a client sends
        key = (route, method, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "palaver_http_requests",
            "HTTP requests answered since the process started, by route template (never the raw path; "
            "'unmatched' for requests that reached no route, including those refused before routing: "
            "401 for a bad key, 413), method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in list(self.counts.items()):
            family.add_metric([route, method, str(status)], count)
        yield family


HTTP_REQUESTS = RequestCounts()
REGISTRY.register(HTTP_REQUESTS)


class _DatabaseCollector:
    """The database-derived families, from the snapshots `render` was handed (none outside `render`)."""

    def __init__(self) -> None:
        self.snapshot: dict[str, dict[str, int]] | None = None
        self.ledger: LedgerTotals | None = None

    def collect(self) -> Iterator[Metric]:
        snapshot, ledger = self.snapshot, self.ledger
        if snapshot is None or ledger is None:
            return
        yield _by_label(
            GaugeMetricFamily,
            "palaver_conversations",
            "Conversations stored, by status: every row, soft-deleted ones included (hard-deleted rows are "
            "gone). Read from the database at scrape time.",
            "status",
            snapshot["conversations_by_status"],
            [s.value for s in Status],
        )
        yield _by_label(
            CounterMetricFamily,
            "palaver_conversation_endings",
            "Conversations ended, by shutdown_reason, counted over the stored rows at scrape time: "
            "right across restarts, but a hard delete removes its row, so the count can go down.",
            "reason",
            snapshot["endings_by_reason"],
            [r.value for r in ShutdownReason],
        )
        yield _by_label(
            GaugeMetricFamily,
            "palaver_webhook_deliveries",
            "Webhooks in the delivery ledger, by status (pending, delivered, failed). Read at scrape time; "
            "changes the delivery worker has not taken from the outbox yet are not counted.",
            "status",
            ledger.by_status,
            [s.value for s in DeliveryStatus],
        )
        yield _by_label(
            CounterMetricFamily,
            "palaver_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered (2xx), retry (will be sent again), failed "
            "(given up for good). Kept by the delivery worker in its ledger.",
            "outcome",
            ledger.attempts,
            list(ATTEMPT_OUTCOMES.values()),
        )
        cumulative, buckets = 0, []
        for bound in LATENCY_BUCKETS:
            cumulative += ledger.latency_buckets.get(bound, 0)
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        yield HistogramMetricFamily(
            "palaver_webhook_delivery_latency_seconds",
            "Duration of each webhook delivery attempt's HTTP request (until the answer was read or the "
            "request failed); refused targets make no request and are not counted.",
            buckets=buckets,
            sum_value=ledger.latency_sum,
        )


def _by_label(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    label: str,
    counts: dict[str, int],
    known: list[str],
) -> Metric:
    """One labelled family: every known label value (0 if absent, so the series exists from the start),
    then any other value found."""
    metric = family(name, documentation, labels=[label])
    for value in known:
        metric.add_metric([value], counts.get(value, 0))
    for value, count in sorted(counts.items()):
        if value not in known:
            metric.add_metric([value], count)
    return metric


_DATABASE = _DatabaseCollector()
REGISTRY.register(_DATABASE)


def render(snapshot: dict[str, dict[str, int]], ledger: LedgerTotals) -> bytes:
    """The whole exposition: this process's counters plus the database snapshots given."""
    # generate_latest is synchronous, so no other render can run in between.
    _DATABASE.snapshot, _DATABASE.ledger = snapshot, ledger
    try:
        return generate_latest(REGISTRY)
    finally:
        _DATABASE.snapshot = _DATABASE.ledger = None
