"""The detail backfill: the whole object of every row whose detail is missing or stale, newest first;
then the item images still to fetch (``tds_daemon.pull.images``), from the same share of the budget.

Stale rows before missing ones; within the backfill's share of the day's budget and half of each app's
requests per minute; resumable (the rows are the state, one run at a time under an advisory lock); never
the same version twice (``detail_fetched_for``); a row a webhook made whole meanwhile is skipped. How
each answer is recorded: docs/ARCHITECTURE.md, "Pulls and the detail backfill".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError

from tds_daemon import entities
from tds_daemon.apply import upsert
from tds_daemon.entities import EntitySpec
from tds_daemon.oneline import first_line
from tds_daemon.pull import images
from tds_daemon.pull.zoho import ZohoClient, ZohoError
from tds_daemon.pull.zoho.budget import Budget
from tds_daemon.pull.zoho.errors import ZohoBreakerOpen, ZohoBudgetSpent, ZohoStopped, ZohoUnavailable
from tds_daemon.store.schema import entity_table

log = logging.getLogger(__name__)

DETAIL_QUEUE, DETAIL_ACTOR = "tds.detail", "detail_backfill"
BATCH = 50  # rows chosen per round, newest first across entities
THREADS = 2  # reads in flight at once (the concurrency cap and the rate limit bound them further)
LOCK_KEY = 0x7464735f64657461  # pg_try_advisory_lock key of the one running backfill ("tds_deta")


def wanted(spec: EntitySpec, table):
    """Rows of ``spec`` whose whole object should be read: not current, alive, this version not yet read."""
    t = table
    return (t.c.detail_state != "current") & t.c.deleted_at.is_(None) & \
        t.c.detail_fetched_for.is_distinct_from(t.c.version_at)


def backlog(engine: Engine, schema: str) -> dict[str, dict[str, int]]:
    """Per entity (those whose list rows are not whole): rows ``missing`` and ``stale``, and ``waiting``,
    those of them a read is still to be made for (the rest were read at this version already)."""
    out = {}
    with engine.connect() as conn:
        for spec in entities.ENTITIES:
            if spec.lists_whole:
                continue
            t = entity_table(spec, schema)
            missing, stale, waiting = conn.execute(select(
                func.count().filter(t.c.detail_state == "missing"),
                func.count().filter(t.c.detail_state == "stale"),
                func.count().filter(t.c.detail_fetched_for.is_distinct_from(t.c.version_at)),
            ).where(t.c.detail_state != "current", t.c.deleted_at.is_(None))).one()
            out[spec.name] = {"missing": missing, "stale": stale, "waiting": waiting}
    return out


def progress_report(engine: Engine, config, budget: Budget | None) -> dict[str, Any]:
    """The backlog per entity and a rough time to completion at the current budget (None when unknown)."""
    per_entity = backlog(engine, config.database.entity_schema)
    image_backlog = images.backlog(engine, config.database.entity_schema)
    total = sum(e["waiting"] for e in per_entity.values()) + image_backlog
    out: dict[str, Any] = {"entities": per_entity, "images_waiting": image_backlog, "waiting": total,
                           "eta_seconds": None, "eta": None}
    if budget is None:
        return out
    state = budget.state()
    per_day = budget.backfill_per_day()
    rate_per_s = max(1, config.zoho.requests_per_minute // 2) / 60.0
    out.update(backfill_left_today=state.backfill_left, backfill_per_day=per_day)
    if total == 0:
        out.update(eta_seconds=0, eta="done")
    elif total <= state.backfill_left:
        out["eta_seconds"] = round(total / rate_per_s)
    elif per_day > 0:
        resets = dt.datetime.fromisoformat(state.resets_at)
        days = -(-(total - state.backfill_left) // per_day)
        until_reset = max(0.0, (resets - dt.datetime.now(dt.UTC)).total_seconds())
        out["eta_seconds"] = round(until_reset + (days - 1) * 86400 + min(per_day, total) / rate_per_s)
    if out["eta_seconds"] and out["eta"] is None:
        out["eta"] = _humanize(out["eta_seconds"])
    return out


def _humanize(seconds: float) -> str:
    if seconds < 90:
        return f"about {round(seconds)} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"about {round(seconds / 3600)} h"
    return f"about {round(seconds / 86400)} days"


@dataclass
class Report:
    read: int = 0  # Zoho reads that returned an object
    current: int = 0  # rows made whole by them
    stale: int = 0  # reads older than the row (a newer version arrived meanwhile)
    yielded: int = 0  # rows no longer waiting when their turn came (a webhook got there first)
    gone: int = 0  # 404: marked deleted
    refused: int = 0  # other Zoho refusals, recorded, not retried
    requests: int = 0
    images_stored: int = 0  # item images fetched and stored (tds_daemon.pull.images)
    images_failed: int = 0  # image answers recorded as not storable (404, not an image, too large)
    stopped: str = "done"  # done | deadline | limit | budget | zoho_unavailable | already_running | shutdown
    error: str | None = None
    per_entity: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "lock"}


@dataclass(frozen=True)
class _Candidate:
    spec: EntitySpec
    zoho_id: str
    version_at: dt.datetime
    stale: bool


class _Stop(Exception):
    def __init__(self, reason: str, error: str | None = None):
        super().__init__(reason)
        self.reason, self.error = reason, error


class Backfill:
    def __init__(self, config, engine: Engine, client: ZohoClient):
        self.config, self.engine, self.client = config, engine, client
        self.stop: threading.Event | None = None
        self.schema = config.database.entity_schema

    def run(self, *, names: list[str] | None = None, deadline_s: float | None = None, limit: int | None = None,
            progress: Callable[[Report], None] | None = None, stop: threading.Event | None = None) -> Report:
        """Read whole objects until none is waiting, the deadline or ``limit`` reads, or the budget ends it;
        ``stop`` set (the process is stopping) ends it before the next object, so a stop never waits for it."""
        report = Report()
        self.stop = stop
        specs = [s for s in entities.ENTITIES if not s.lists_whole and (names is None or s.name in names)]
        requests_before = self.client.requests
        with self.engine.connect() as lock_conn:
            if not lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar_one():
                report.stopped = "already_running"
                return report
            try:
                started = time.monotonic()
                if names is None or images.ITEM.name in names:
                    images.mark_removed(self.engine, self.schema)  # costs no call: at once, whatever waits
                self._rounds(specs, report, deadline_s, limit, progress)
                if report.stopped == "done" and (names is None or images.ITEM.name in names):
                    left = None if deadline_s is None else deadline_s - (time.monotonic() - started)
                    self._images(report, left, limit, progress)
            finally:
                report.requests = self.client.requests - requests_before
                lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                lock_conn.commit()
        log.info("detail backfill: stopped=%s read=%d current=%d yielded=%d gone=%d refused=%d requests=%d",
                 report.stopped, report.read, report.current, report.yielded, report.gone, report.refused,
                 report.requests)
        return report

    def _rounds(self, specs, report: Report, deadline_s, limit, progress) -> None:
        """Whole objects, a batch at a time, until none waits (``done``), or the deadline, limit or Zoho ends it."""
        def one(c: _Candidate) -> None:
            self._one(c, report)

        if self._drain("detail", report, deadline_s, limit, lambda n: self._candidates(specs, n), one, progress):
            report.stopped = "done"

    def _images(self, report: Report, deadline_s, limit, progress) -> None:
        """The item images still to fetch, after the detail reads, from the same share of the budget."""
        def one(wanted: tuple[str, str]) -> None:
            try:
                outcome = images.fetch_one(self.config, self.engine, self.client, *wanted)
            except images.Stop as stop:
                raise _Stop(stop.reason, stop.error) from None
            with report.lock:
                report.images_stored += outcome.stored
                report.images_failed += outcome.error is not None
                report.yielded += outcome.skipped

        self._drain("image", report, deadline_s, limit, lambda n: images.wanted(self.engine, self.schema, n), one,
                    progress)

    def _drain(self, name: str, report: Report, deadline_s, limit, next_batch, one, progress) -> bool:
        """Run ``one`` over batches from ``next_batch(n)`` (THREADS at a time) until a batch is empty: True.
        False when ``limit`` reads in all, ``deadline_s``, Zoho (``_Stop``) or a stop ended it, said in the report."""
        started = time.monotonic()

        def unless_stopping(x) -> None:
            if self.stop is not None and self.stop.is_set():
                raise _Stop("shutdown")
            one(x)

        with ThreadPoolExecutor(THREADS, thread_name_prefix=name) as pool:
            while True:
                spent = report.read + report.gone + report.refused + report.images_stored + report.images_failed
                left = None if limit is None else limit - spent
                if left is not None and left <= 0:
                    report.stopped = "limit"
                    return False
                if deadline_s is not None and time.monotonic() - started >= deadline_s:
                    report.stopped = "deadline"
                    return False
                batch = next_batch(BATCH if left is None else min(BATCH, left))
                if not batch:
                    return True
                try:
                    for _ in pool.map(unless_stopping, batch):
                        if progress:
                            progress(report)
                except _Stop as stop:
                    report.stopped, report.error = stop.reason, stop.error
                    return False

    def _candidates(self, specs: list[EntitySpec], n: int) -> list[_Candidate]:
        found: list[_Candidate] = []
        with self.engine.connect() as conn:
            for spec in specs:
                t = entity_table(spec, self.schema)
                stale = (t.c.detail_state == "stale").label("stale")
                rows = conn.execute(select(t.c.zoho_id, t.c.version_at, stale).where(wanted(spec, t))
                                    .order_by(stale.desc(), t.c.version_at.desc()).limit(n))
                found += [_Candidate(spec, r.zoho_id, r.version_at, r.stale) for r in rows]
        found.sort(key=lambda c: (c.stale, c.version_at), reverse=True)
        return found[:n]

    def _one(self, c: _Candidate, report: Report) -> None:
        t = entity_table(c.spec, self.schema)
        with self.engine.connect() as conn:  # a webhook may have brought the whole object meanwhile
            still = conn.execute(select(t.c.version_at).where(t.c.zoho_id == c.zoho_id, wanted(c.spec, t))
                                 ).scalar_one_or_none()
        if still is None:
            with report.lock:
                report.yielded += 1
            return
        try:
            body = self.client.get_object(c.spec, c.zoho_id)
        except ZohoStopped:
            raise _Stop("shutdown") from None
        except ZohoBudgetSpent as e:
            raise _Stop("budget", str(e)) from None
        except (ZohoUnavailable, ZohoBreakerOpen) as e:
            raise _Stop("zoho_unavailable", str(e)) from None
        except ZohoError as e:
            if e.status == 404:
                self._mark(t, c, deleted=True)
                with report.lock:
                    report.gone += 1
                return
            log.warning("detail backfill: %s %s refused: %s; not retried until a newer version",
                        c.spec.name, c.zoho_id, e)
            self._mark(t, c)
            with report.lock:
                report.refused += 1
            return
        obj = body.get(c.spec.object_key)
        if not isinstance(obj, dict):
            log.warning("detail backfill: %s %s: the answer has no %r", c.spec.name, c.zoho_id, c.spec.object_key)
            self._mark(t, c)
            with report.lock:
                report.refused += 1
            return
        try:
            with self.engine.begin() as conn:
                outcome = upsert.apply(conn, c.spec, self.schema,
                                       [upsert.Change(obj, dt.datetime.now(dt.UTC), whole=True)])
                self._mark(t, c, conn=conn)
        except (upsert.InvalidObject, DataError) as e:  # permanent: this version is not read again
            log.warning("detail backfill: %s %s not stored: %s; not retried until a newer version", c.spec.name,
                        c.zoho_id, e if isinstance(e, upsert.InvalidObject) else first_line(e.orig))
            self._mark(t, c)
            with report.lock:
                report.refused += 1
            return
        with report.lock:
            report.read += 1
            report.per_entity[c.spec.name] = report.per_entity.get(c.spec.name, 0) + 1
            if "stale" in outcome.values():
                report.stale += 1
            else:
                report.current += 1

    def _mark(self, t, c: _Candidate, *, deleted: bool = False, conn=None) -> None:
        """Record that this version was read (and, for a 404, that the object is gone)."""
        values: dict[str, Any] = {"detail_fetched_for": c.version_at}
        if deleted:
            values.update(deleted_at=func.now(), synced_at=func.now())
        stmt = update(t).where(t.c.zoho_id == c.zoho_id, t.c.version_at == c.version_at).values(**values)
        if conn is not None:
            conn.execute(stmt)
            return
        with self.engine.begin() as own:
            own.execute(stmt)


def last_key(namespace: str) -> str:
    return f"{namespace}:detail:last"


def record(client, namespace: str, origin: str, report: Report) -> None:
    """Keep the last background run's report where status and the API read it (best effort)."""
    try:
        client.set(last_key(namespace), json.dumps({"origin": origin, "finished_at": dt.datetime.now(dt.UTC)
                                                    .isoformat(), **report.as_json()}))
    except Exception as e:
        log.debug("detail backfill: report not recorded: %s", type(e).__name__)


def last(client, namespace: str) -> dict | None:
    try:
        raw = client.get(last_key(namespace))
        return json.loads(raw) if raw else None
    except Exception:
        return None
