"""``GET /metrics``: every process's metrics, aggregated, plus gauges read from PostgreSQL and Redis."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from tds_daemon import __version__, entities
from tds_daemon.apply import syncqueue
from tds_daemon.care.jobs import leader_key
from tds_daemon.pull import images, runs
from tds_daemon.pull.detail import backlog
from tds_daemon.store.schema import STATUSES

log = logging.getLogger(__name__)


class DatabaseCollector:
    """Queue states are facts in PostgreSQL, read at scrape time rather than tracked in memory."""

    def __init__(self, engine, schema: str):
        self.engine, self.schema = engine, schema

    def collect(self):
        build = GaugeMetricFamily("tds_build_info", "TDS version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        try:
            with self.engine.connect() as conn:
                counts = syncqueue.counts(conn)
        except Exception as e:
            log.warning("metrics: queue counts unavailable: %s", type(e).__name__)
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
        try:
            with self.engine.connect() as conn:
                successes = runs.latest_successes(conn)
        except Exception as e:
            log.warning("metrics: last successful pulls unavailable: %s", type(e).__name__)
            successes = None
        if successes is not None:
            last = GaugeMetricFamily("tds_sync_last_success_timestamp_seconds", "When the latest successful pull "
                                     "of each entity and kind finished (Unix time; runs kept healer.retain_days)",
                                     labels=["entity", "kind"])
            for entity, kind, at in successes:
                last.add_metric([entity, kind], at)
            yield last
        try:
            waiting = {name: e["waiting"] for name, e in backlog(self.engine, self.schema).items()}
        except Exception as e:
            log.warning("metrics: detail backlog unavailable: %s", type(e).__name__)
            return
        detail = GaugeMetricFamily("tds_detail_backlog", "Rows whose whole Zoho object the detail backfill is still "
                                   "to read (list rows without their detail, or with stale detail)", labels=["entity"])
        for spec in entities.ENTITIES:
            detail.add_metric([spec.name], waiting.get(spec.name, 0))
        yield detail
        try:
            image_backlog = images.backlog(self.engine, self.schema)
        except Exception as e:
            log.warning("metrics: image backlog unavailable: %s", type(e).__name__)
            return
        waiting_images = GaugeMetricFamily("tds_image_backlog", "Item images the backfill is still to fetch "
                                           "(items whose image id has no stored image)")
        waiting_images.add_metric([], image_backlog)
        yield waiting_images


class BreakerCollector:
    """``tds_breaker_state{breaker}`` (0 closed, 1 half-open, 2 open): the breakers live in Redis, shared by
    every process, so they are read at scrape time rather than kept in any one process's gauge."""

    def __init__(self, breakers):
        self.breakers = breakers

    def collect(self):
        try:
            statuses = self.breakers.statuses()
        except Exception as e:
            log.warning("metrics: breaker states unavailable: %s", type(e).__name__)
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
        try:
            state = self.budget.state()
        except Exception as e:
            log.warning("metrics: Zoho budget unavailable: %s", type(e).__name__)
            return
        calls = GaugeMetricFamily("tds_zoho_calls_today", "Zoho calls TDS made today (every process; the day of "
                                  "scheduler.timezone)")
        calls.add_metric([], state.used)
        yield calls
        remaining = GaugeMetricFamily("tds_zoho_budget_remaining", "Zoho calls left today: zoho.daily_budget less "
                                      "today's calls, or Zoho's own X-Rate-Limit-Remaining when lower")
        remaining.add_metric([], state.remaining)
        yield remaining
        budget = GaugeMetricFamily("tds_zoho_daily_budget", "zoho.daily_budget: the Zoho calls TDS may make in a day")
        budget.add_metric([], state.budget)
        yield budget


class LeaderCollector:
    """``tds_scheduler_leader``: 1 while some ``tds run`` sharing this Redis namespace holds the scheduler's
    leader lease, else 0 (read from Redis at scrape time, so every instance reports the same)."""

    def __init__(self, client, namespace: str):
        self.client, self.key = client, leader_key(namespace)

    def collect(self):
        try:
            held = self.client.exists(self.key)
        except Exception as e:
            log.warning("metrics: scheduler leader unavailable: %s", type(e).__name__)
            return
        leader = GaugeMetricFamily("tds_scheduler_leader", "1 while a tds run holds the scheduler's leader lease "
                                   "(the jobs are being scheduled), else 0; absent where scheduler.enabled is false")
        leader.add_metric([], 1 if held else 0)
        yield leader


class MetricsResource:
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
