"""Pulling from Zoho: full, incremental and stock sync of one entity, recorded as a sync run.

Full: every page, several in flight within the shared rate limit, each one batched newer-wins upsert;
rows Zoho no longer lists are confirmed gone with a read each. Incremental: newest first down to the
cursor, less an overlap. Stock: the item list's stock columns, or chosen items' whole objects
(``tds_daemon.pull.stockitems``). The cursor moves only when a run succeeds; a run that a breaker or the
budget refuses before its first request is recorded ``skipped``. What each fetch tells the breakers:
docs/ARCHITECTURE.md, "Pulls and the detail backfill".
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from tds_daemon import zohovalues
from tds_daemon.apply import events, upsert
from tds_daemon.entities import EntitySpec
from tds_daemon.guard.breakers import clock
from tds_daemon.oneline import described
from tds_daemon.pull import runs, stockitems
from tds_daemon.pull.zoho import ZohoClient, ZohoError, ZohoUnavailable
from tds_daemon.pull.zoho.client import PER_PAGE, Page
from tds_daemon.pull.zoho.errors import ZohoBreakerOpen, ZohoBudgetSpent, ZohoInvalidId, ZohoRateLimited
from tds_daemon.store.schema import entity_table

log = logging.getLogger(__name__)

SYNC_QUEUE = "tds.sync"
SYNC_ACTOR = "sync_run"
KINDS = ("full", "incremental", "stock")
OVERLAP = dt.timedelta(minutes=5)
PAGES_IN_FLIGHT = 4
MAX_DELETE_CHECKS = 200  # reads spent confirming deletions per run; the rest wait for the next run


class SyncError(Exception):
    """A run that could not complete; the message is what the run records."""


class SyncSkipped(SyncError):
    """A run not attempted because a circuit breaker is open; recorded with status ``skipped``."""


@dataclass
class Tally:
    pages: int = 0
    objects: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    deleted: int = 0
    requests: int = 0
    breaker_results: int = 0  # results told to the entity's breaker (not recorded in the run)
    newest: dt.datetime | None = None
    seen: set[str] = field(default_factory=set)
    run_id: int | None = None  # recorded on the rows the run writes
    items: dict[str, dict] | None = None  # a run of chosen items: what became of each (stockitems)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in runs.COUNTS}

    def add(self, outcomes: dict[str, str]) -> None:
        for outcome in outcomes.values():
            if outcome == "missing":
                continue
            setattr(self, outcome, getattr(self, outcome) + 1)


Progress = Callable[[Tally], None]
HEARTBEAT_S = 10.0  # how often a run writes its counts so far (and so says it is alive)
ABANDONED_AFTER_S = 600  # a running run silent this long is failed as abandoned (runs.abandon_stale)


class _Heartbeat:
    """The progress callback of a run: the caller's, plus the run's counts in the database every
    HEARTBEAT_S, so that ``GET /api/tds/runs/{id}`` shows a long run advancing and the recovery sweep
    can tell a live run from one whose worker was killed."""

    def __init__(self, engine: Engine, run_id: int, progress: Progress | None, requests: Callable[[], int]):
        self.engine, self.run_id, self.progress, self.requests = engine, run_id, progress, requests
        self.last = time.monotonic()

    def __call__(self, tally: Tally) -> None:
        if self.progress:
            self.progress(tally)
        if time.monotonic() - self.last < HEARTBEAT_S:
            return
        self.last = time.monotonic()
        try:
            runs.progress(self.engine, self.run_id, {**tally.counts(), "requests": self.requests()})
        except SQLAlchemyError as e:  # a missed beat is not worth failing the run for
            log.debug("sync run %s: heartbeat not written: %s", self.run_id, e)


class Syncer:
    def __init__(self, config, engine: Engine, client: ZohoClient):
        self.config, self.engine, self.client = config, engine, client
        self.schema = config.database.entity_schema
        self.breakers = client.breakers
        if self.breakers.alerts is None:  # a client built without an engine: its transitions alert too
            self.breakers.alerts = engine

    def run(self, run_id: int, spec: EntitySpec, kind: str, since: dt.datetime | None = None,
            progress: Progress | None = None, item_ids: list[str] | None = None) -> Tally:
        """Execute a started run (``item_ids``: of these items only) and record its end; returns the tally,
        raises SyncError on failure."""
        tally = Tally(run_id=run_id)
        requests_before = self.client.requests
        breaker = self.breakers.entity(spec.name)
        decision = breaker.check()
        if not decision:
            when = (f"open until {clock(decision.retry_at)}" if decision.state == "open"
                    else "half-open with its trial calls in flight")
            self._skip(run_id, spec, kind, tally, f"circuit breaker {breaker.name} is {when}")
        beat = _Heartbeat(self.engine, run_id, progress, lambda: self.client.requests - requests_before)
        try:
            kind = self._execute(spec, kind, since, tally, beat, item_ids)
            tally.requests = self.client.requests - requests_before
            if kind != "stock":
                with self.engine.begin() as conn:
                    runs.advance_cursor(conn, spec.name, kind, tally.newest)
            runs.finish(self.engine, run_id, "succeeded", tally.counts(), kind=kind, item_results=tally.items)
            log.info("sync run %s succeeded: entity=%s kind=%s %s", run_id, spec.name, kind, tally.counts())
            return tally
        except (ZohoBreakerOpen, ZohoBudgetSpent) as e:
            if self.client.requests == requests_before:  # not one request sent: the run never began
                self._skip(run_id, spec, kind, tally, str(e))
            error = str(e)
        except (ZohoError, upsert.InvalidObject, SyncError) as e:
            error = str(e)
        except Exception as e:  # recorded, then raised: a run never stays 'running' because of a bug
            tally.requests = self.client.requests - requests_before
            runs.finish(self.engine, run_id, "failed", tally.counts(), f"internal error: {described(e)}")
            raise
        finally:
            if decision.state == "half_open" and not tally.breaker_results:
                breaker.release()  # a trial permit this run did not use
        tally.requests = self.client.requests - requests_before
        runs.finish(self.engine, run_id, "failed", tally.counts(), error, item_results=tally.items)
        log.warning("sync run %s failed: entity=%s kind=%s error=%s", run_id, spec.name, kind, error)
        raise SyncError(error)

    def _skip(self, run_id: int, spec: EntitySpec, kind: str, tally: Tally, why: str):
        error = f"{why}; run skipped"
        runs.finish(self.engine, run_id, "skipped", tally.counts(), error)
        log.warning("sync run %s skipped: entity=%s kind=%s reason=%s", run_id, spec.name, kind, why)
        raise SyncSkipped(error)

    def _zoho(self, spec: EntitySpec, tally: Tally, fetch: Callable[[], object]):
        """One fetch for ``spec``, its outcome told to the entity's breaker."""
        breaker = self.breakers.entity(spec.name)
        try:
            result = fetch()
        except (ZohoBreakerOpen, ZohoRateLimited, ZohoBudgetSpent):
            raise  # nothing was asked of Zoho, or it was our own pace
        except ZohoUnavailable:
            tally.breaker_results += 1
            breaker.record(False)
            raise
        except ZohoError as e:
            if e.status == 404:  # Zoho answered: a deletion check's normal answer
                tally.breaker_results += 1
                breaker.record(True)
            raise
        tally.breaker_results += 1
        breaker.record(True)
        return result

    def _page(self, spec: EntitySpec, tally: Tally, number: int, **kw) -> Page:
        return self._zoho(spec, tally, lambda: self.client.list_page(spec, number, **kw))

    def _execute(self, spec: EntitySpec, kind: str, since: dt.datetime | None, tally: Tally,
                 progress: Progress | None, item_ids: list[str] | None = None) -> str:
        """Run the pull; returns the kind actually done (an incremental with nothing to start from is full)."""
        if kind == "stock" and not spec.stock_columns:
            raise SyncError(f"{spec.name} has no stock fields; stock sync is for products")
        if kind == "stock" and item_ids:
            stockitems.refresh(self.engine, self.schema, spec, item_ids, lambda zoho_id: self._zoho(
                spec, tally, lambda: self.client.get_object(spec, zoho_id)), tally, progress)
            return kind
        if kind == "stock":
            self._stock(spec, tally, progress)
            return kind
        if kind == "incremental":
            if not spec.modified_always:  # nothing to order by: list it all, but deletions wait for a full run
                self._full(spec, tally, progress, detect_deletions=False)
                return kind
            cursor = self._cursor(spec)
            start = since or (cursor - OVERLAP if cursor else None)
            if start:
                self._incremental(spec, start, tally, progress)
                return kind
        self._full(spec, tally, progress, detect_deletions=True)
        return "full"

    def _cursor(self, spec: EntitySpec) -> dt.datetime | None:
        with self.engine.connect() as conn:
            return runs.cursor(conn, spec.name)

    def _apply_page(self, spec: EntitySpec, objects: list[dict], tally: Tally, arrived: dt.datetime, *,
                    whole: bool = False) -> None:
        """Apply objects of a list page (summaries, unless the entity's list rows are whole) or, with
        ``whole``, objects read one by one."""
        whole = whole or spec.lists_whole
        with self.engine.begin() as conn:
            outcomes = upsert.apply(conn, spec, self.schema, [upsert.Change(o, arrived, whole=whole) for o in objects],
                                    run_id=tally.run_id)
        with tally.lock:
            tally.add(outcomes)
            tally.seen.update(outcomes)
            tally.objects += len(objects)
            tally.pages += 1
            _note_newest(spec, objects, tally)

    def _full(self, spec: EntitySpec, tally: Tally, progress: Progress | None, *, detect_deletions: bool) -> None:
        started = dt.datetime.now(dt.UTC)
        # Oldest first: an object modified while we page moves to the end, where we still meet it.
        self._pages(spec, lambda objects: self._apply_page(spec, objects, tally, started), tally, progress,
                    newest_first=False)
        if detect_deletions:
            self._detect_deletions(spec, tally, started)

    def _pages(self, spec: EntitySpec, apply: Callable[[list[dict]], None], tally: Tally,
               progress: Progress | None, *, newest_first: bool) -> None:
        """Fetch pages concurrently, each applied by the thread that fetched it.

        Zoho does not say how many pages there are. Pages the local row count predicts (and the page
        after the last one Zoho said had more after it) are fetched PAGES_IN_FLIGHT at a time, past
        that one at a time: a copy that is whole costs exactly its pages, not a call more (calls are
        scarce). With no local rows to go by (a first sync), up to twice the last page Zoho said had
        more after it is fetched at once, so it still ramps up to full concurrency, at the cost of a
        few empty pages at the end.
        """
        expected_pages = -(-self._local_count(spec) // PER_PAGE)
        confirmed = 0
        lock = threading.Lock()  # the highest page Zoho said is followed by another
        with ThreadPoolExecutor(PAGES_IN_FLIGHT, thread_name_prefix=f"sync-{spec.name}") as pool:
            inflight: dict[Future, int] = {}
            next_page, last_page = 1, None

            def fetch_and_apply(number: int):
                # Each thread applies its own page on its own connection: the database work of
                # several pages overlaps (rows are written in id order, so batches cannot deadlock).
                page = self._page(spec, tally, number, newest_first=newest_first)
                if page.objects:
                    apply(page.objects)
                    if progress:
                        with lock:
                            progress(tally)
                return page

            def fill() -> None:
                nonlocal next_page
                bound = max(expected_pages, confirmed + 1) if expected_pages else 2 * confirmed
                while last_page is None and len(inflight) < (PAGES_IN_FLIGHT if next_page <= bound else 1):
                    inflight[pool.submit(fetch_and_apply, next_page)] = next_page
                    next_page += 1

            fill()
            try:
                while inflight:
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        number = inflight.pop(future)
                        page = future.result()
                        if not page.has_more:
                            last_page = number if last_page is None else min(last_page, number)
                        else:
                            confirmed = max(confirmed, number)
                    fill()
            finally:
                for future in inflight:
                    future.cancel()

    def _local_count(self, spec: EntitySpec) -> int:
        table = entity_table(spec, self.schema)
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table).where(table.c.deleted_at.is_(None))
                                ).scalar_one()

    def _incremental(self, spec: EntitySpec, since: dt.datetime, tally: Tally, progress: Progress | None) -> None:
        arrived = dt.datetime.now(dt.UTC)
        since_text = since.strftime("%Y-%m-%dT%H:%M:%S%z")
        number = 0
        while True:
            number += 1
            page = self._page(spec, tally, number, newest_first=True, since=since_text)
            fresh = [o for o in page.objects if (_modified(spec, o) or since) >= since]
            if fresh:
                self._apply_page(spec, fresh, tally, arrived)
                if progress:
                    progress(tally)
            if len(fresh) < len(page.objects) or not page.has_more:
                return  # newest first: everything after this is older than the cursor

    def _stock(self, spec: EntitySpec, tally: Tally, progress: Progress | None) -> None:
        arrived = dt.datetime.now(dt.UTC)

        def apply(objects: list[dict]) -> None:
            with self.engine.begin() as conn:
                outcomes = upsert.apply_stock(conn, spec, self.schema, objects, run_id=tally.run_id)
                unknown = [o for o in objects if outcomes.get(zohovalues.zoho_id(o.get(spec.id_field))) == "missing"]
                if unknown:  # new items: apply them whole
                    outcomes.update(upsert.apply(conn, spec, self.schema,
                                                 [upsert.Change(o, arrived, whole=spec.lists_whole)
                                                  for o in unknown], run_id=tally.run_id))
            with tally.lock:
                tally.add(outcomes)
                tally.objects += len(objects)
                tally.pages += 1

        self._pages(spec, apply, tally, progress, newest_first=False)

    def _detect_deletions(self, spec: EntitySpec, tally: Tally, started: dt.datetime) -> None:
        table = entity_table(spec, self.schema)
        with self.engine.connect() as conn:
            # Rows written after the run began (webhooks meanwhile) are not candidates.
            live = set(conn.execute(select(table.c.zoho_id).where(
                table.c.deleted_at.is_(None), table.c.synced_at < started)).scalars())
        candidates = sorted(live - tally.seen)
        if len(candidates) > MAX_DELETE_CHECKS:
            log.warning("sync %s: %d rows not listed by Zoho; confirming %d this run", spec.name, len(candidates),
                        MAX_DELETE_CHECKS)
        gone = []
        for zoho_id in candidates[:MAX_DELETE_CHECKS]:
            try:
                body = self._zoho(spec, tally, lambda z=zoho_id: self.client.get_object(spec, z))
            except ZohoInvalidId as e:  # a row no read can confirm: left as it is
                log.warning("sync %s: a row's deletion not checked: %s", spec.name, e)
                continue
            except ZohoError as e:
                if e.status == 404:
                    gone.append(zoho_id)
                    continue
                raise
            obj = body.get(spec.object_key)
            if isinstance(obj, dict):  # still there: it had moved while we paged
                self._apply_page(spec, [obj], tally, started, whole=True)
        if gone:
            with self.engine.begin() as conn:
                deleted = conn.execute(update(table).where(table.c.zoho_id.in_(gone), table.c.deleted_at.is_(None))
                                       .values(deleted_at=func.now(), synced_at=func.now(),
                                               last_pull_run_id=tally.run_id)
                                       .returning(table.c.zoho_id, table.c.zoho_last_modified)).all()
                for zoho_id, modified in deleted:
                    events.entity_synced(conn, entity=spec.name, zoho_id=zoho_id, action="deleted", source="pull",
                                         last_modified=modified, changed={})
                tally.deleted += len(deleted)


def _modified(spec: EntitySpec, obj: dict) -> dt.datetime | None:
    if not spec.last_modified:
        return None
    try:
        return zohovalues.parse_timestamp(obj.get(spec.last_modified))
    except zohovalues.InvalidValue:
        return None


def _note_newest(spec: EntitySpec, objects: list[dict], tally: Tally) -> None:
    for obj in objects:
        modified = _modified(spec, obj)
        if modified and (tally.newest is None or modified > tally.newest):
            tally.newest = modified
