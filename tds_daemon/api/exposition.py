"""``GET /metrics``: every process's metrics, aggregated, plus gauges read from PostgreSQL and Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from tds_daemon import __version__, entities
from tds_daemon.api.auth import Access
from tds_daemon.apply import syncqueue
from tds_daemon.care.jobs import leader_key
from tds_daemon.publish import standing
from tds_daemon.pull import images, runs
from tds_daemon.pull.detail import backlog
from tds_daemon.store.schema import STATUSES

log = logging.getLogger(__name__)
T = TypeVar("T")


def _scraped(what: str, read: Callable[[], T]) -> T | None:
    """``read()``, or None (with a warning naming ``what``) when it fails: a source that does not answer
    leaves its gauges out of this scrape instead of failing the whole scrape."""
    try:
        return read()
    except Exception as e:
        log.warning("metrics: %s unavailable: %s", what, type(e).__name__)
        return None


def _counts(engine):
    with engine.connect() as conn:
        return syncqueue.counts(conn)


def _successes(engine):
    with engine.connect() as conn:
        return runs.latest_successes(conn)


class DatabaseCollector:
    """Queue states are facts in PostgreSQL, read at scrape time rather than tracked in memory."""

    def __init__(self, engine, schema: str):
        self.engine, self.schema = engine, schema

    def collect(self):
        build = GaugeMetricFamily("tds_build_info", "TDS version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        counts = _scraped("queue counts", lambda: _counts(self.engine))
        if counts is None:
            return
        items = GaugeMetricFamily("tds_queue_items", "Sync items by entity and status",
                                  labels=["entity", "status"])
        dead = GaugeMetricFamily("tds_dead_letter_items", "Sync items in dead_letter", labels=["entity"])
        for spec in entities.ENTITIES:
            for status in STATUSES:
                items.add_metric([spec.name, status], counts.get((spec.name, status), 0))
            dead.add_metric([spec.name], counts.get((spec.name, "dead_letter"), 0))
        yield items
        yield dead
        successes = _scraped("last successful pulls", lambda: _successes(self.engine))
        if successes is not None:
            last = GaugeMetricFamily("tds_sync_last_success_timestamp_seconds", "When the latest successful pull "
                                     "of each entity and kind finished (Unix time; runs kept healer.retain_days)",
                                     labels=["entity", "kind"])
            for entity, kind, at in successes:
                last.add_metric([entity, kind], at)
            yield last
        detail_backlog = _scraped("detail backlog", lambda: backlog(self.engine, self.schema))
        if detail_backlog is None:
            return
        waiting = {name: e["waiting"] for name, e in detail_backlog.items()}
        detail = GaugeMetricFamily("tds_detail_backlog", "Rows whose whole Zoho object the detail backfill is still "
                                   "to read (list rows without their detail, or with stale detail)", labels=["entity"])
        for spec in entities.ENTITIES:
            detail.add_metric([spec.name], waiting.get(spec.name, 0))
        yield detail
        image_backlog = _scraped("image backlog", lambda: images.backlog(self.engine, self.schema))
        if image_backlog is None:
            return
        yield GaugeMetricFamily("tds_image_backlog", "Item images the backfill is still to fetch "
                                "(items whose image id has no stored image)", value=image_backlog)


class BreakerCollector:
    """``tds_breaker_state{breaker}`` (0 closed, 1 half-open, 2 open): the breakers live in Redis, shared by
    every process, so they are read at scrape time rather than kept in any one process's gauge."""

    def __init__(self, breakers):
        self.breakers = breakers

    def collect(self):
        statuses = _scraped("breaker states", lambda: self.breakers.statuses())
        if statuses is None:
            return
        state = GaugeMetricFamily("tds_breaker_state", "Circuit breaker state (0 closed, 1 half-open, 2 open)",
                                  labels=["breaker"])
        for s in statuses:
            state.add_metric([s.name], s.value)
        yield state


class BudgetCollector:
    """The day's Zoho calls against the budget, counted in Redis by every process (``zoho/budget.py``)."""

    def __init__(self, budget):
        self.budget = budget

    def collect(self):
        state = _scraped("Zoho budget", lambda: self.budget.state())
        if state is None:
            return
        yield GaugeMetricFamily("tds_zoho_calls_today", "Zoho calls TDS made today (every process; the day of "
                                "scheduler.timezone)", value=state.used)
        yield GaugeMetricFamily("tds_zoho_budget_remaining", "Zoho calls left today: zoho.daily_budget less "
                                "today's calls, or Zoho's own X-Rate-Limit-Remaining when lower", value=state.remaining)
        yield GaugeMetricFamily("tds_zoho_daily_budget", "zoho.daily_budget: the Zoho calls TDS may make in a day",
                                value=state.budget)


class LeaderCollector:
    """``tds_scheduler_leader``: 1 while some ``tds run`` sharing this Redis namespace holds the scheduler's
    leader lease, else 0 (read from Redis at scrape time, so every instance reports the same)."""

    def __init__(self, client, namespace: str):
        self.client, self.key = client, leader_key(namespace)

    def collect(self):
        held = _scraped("scheduler leader", lambda: self.client.exists(self.key))
        if held is None:
            return
        yield GaugeMetricFamily("tds_scheduler_leader", "1 while a tds run holds the scheduler's leader lease "
                                "(the jobs are being scheduled), else 0; absent where scheduler.enabled is false",
                                value=1 if held else 0)


class SubscriberCollector:
    """``tds_events_lag_seconds{subscriber}`` and ``tds_events_dead_letters{subscriber}`` of each configured
    subscriber: its cursor and dead letters are rows in PostgreSQL, shared by whichever process pushes."""

    def __init__(self, engine, subscribers):
        self.engine, self.subscribers = engine, tuple(subscribers)

    def collect(self):
        if not self.subscribers:
            return
        rows = _scraped("event subscribers", lambda: standing.standings(self.engine, self.subscribers))
        if rows is None:
            return
        lag = GaugeMetricFamily("tds_events_lag_seconds", "Age of the oldest event a subscriber has not had yet "
                                "(0 when it has had every event it takes)", labels=["subscriber"])
        dead = GaugeMetricFamily("tds_events_dead_letters", "Events a subscriber did not take for three days, "
                                 "kept until replayed (tds events replay)", labels=["subscriber"])
        for s in rows:
            lag.add_metric([s.subscriber.label], s.lag_s)
            dead.add_metric([s.subscriber.label], s.dead_letters)
        yield lag
        yield dead


class MetricsResource:
    access = Access.OPEN

    def __init__(self, engine, schema: str, breakers=None, budget=None, leader=None):
        """``leader``: a LeaderCollector where this configuration expects a scheduler (scheduler.enabled)."""
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry)
        self.registry.register(DatabaseCollector(engine, schema))
        if breakers is not None:
            self.registry.register(BreakerCollector(breakers))
        if budget is not None:
            self.registry.register(BudgetCollector(budget))
        if leader is not None:
            self.registry.register(leader)

    def on_get(self, req, resp):
        resp.data = generate_latest(self.registry)
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
