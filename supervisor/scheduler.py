"""The scheduler of ``tds run``: the jobs of ``tds_daemon.care.jobs``, fired by the lease holder only.

A thread ("tds-scheduler-lease") acquires or renews the Redis lease every ``lease_s / 3``. While this
instance holds it, an APScheduler ``BackgroundScheduler`` fires the jobs; when the lease is lost
(another instance took it, or Redis did not answer within the lease time) that scheduler is shut
down. Every job also checks the lease right before it sends anything, so a wedged lease thread
cannot make two instances send.

Missed runs: a job late by at most MISFIRE_GRACE_S runs once (coalesced) however many runs it
missed. A new leader starts from the next run times its predecessor recorded in Redis, so a run that
fell due during a takeover or a restart still happens, once, instead of a day later.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from zoneinfo import ZoneInfo

import redis
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from supervisor.leader import Lease, new_instance_id
from tds_daemon import crontab
from tds_daemon.apply.broker import make_broker, redis_client
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care.jobs import BY_ID, JOBS, JobContext, JobError, leader_key, read_status, status_key
from tds_daemon.config import Config
from tds_daemon.metrics import scheduler_job_runs
from tds_daemon.oneline import described
from tds_daemon.store.db import make_engine

log = logging.getLogger(__name__)
MISFIRE_GRACE_S = 600
REDIS_ERRORS = (redis.RedisError, OSError)


class Scheduler:
    """Owned by the supervisor: ``start()``, ``reschedule(config)`` on reload, ``stop()`` at the end.

    ``engine`` and ``dispatcher`` may be given (tests); otherwise they are made on first use from the
    configuration, and made again after a reload.
    """

    def __init__(self, config: Config, *, engine=None, dispatcher: Dispatcher | None = None,
                 instance_id: str | None = None):
        self.config = config
        self.instance_id = instance_id or new_instance_id()
        self._engine, self._dispatcher = engine, dispatcher
        self._owns_engine, self._owns_dispatcher = engine is None, dispatcher is None
        self._client = redis_client(config)
        self._lease = self._new_lease(config)
        self._lock = threading.RLock()  # the APScheduler instance and its jobs
        self._context_lock = threading.Lock()
        self._status_lock = threading.Lock()  # read-merge-write of the job status hash
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._aps: BackgroundScheduler | None = None
        self._beat = time.monotonic()
        self._redis_ok = True
        self._closed = False

    # --- what the supervisor calls ---

    def start(self) -> None:
        if not self.config.scheduler.enabled:
            log.info("scheduler disabled (scheduler.enabled = false): instance=%s", self.instance_id)
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._beat = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="tds-scheduler-lease", daemon=True)
        self._thread.start()
        log.info("scheduler started: instance=%s lease_s=%d timezone=%s", self.instance_id,
                 self.config.scheduler.lease_s, self.config.scheduler.timezone)

    def stop(self, *, release: bool = True) -> None:
        """Stop scheduling, in bounded time. ``release=False`` leaves the lease to expire, as a crash would."""
        if self._closed:
            return
        self._closed = True
        self._halt(release)
        self._drop_context(close=True)
        self._client.close()

    def reschedule(self, config: Config) -> None:
        """Apply a reloaded configuration: schedules, jobs on/off, time zone, lease time, Redis."""
        old, self.config = self.config, config
        if self._closed:
            return
        if _redis_settings(old) != _redis_settings(config):
            self._halt(release=True)
            self._client.close()
            self._client = redis_client(config)
            self._lease = self._new_lease(config)
        self._lease.lease_s = config.scheduler.lease_s
        if _context_settings(old) != _context_settings(config):
            self._drop_context(close=False)  # made again on the next run; a run in progress keeps its own
        if not config.scheduler.enabled:
            if old.scheduler.enabled:
                self._halt(release=True)
                log.info("scheduler disabled by reload: instance=%s", self.instance_id)
            return
        self.start()
        with self._lock:
            if self._aps is not None:
                self._sync_jobs(resume=False)
                log.info("scheduler rescheduled: instance=%s timezone=%s", self.instance_id,
                         config.scheduler.timezone)
        self._wake.set()  # a new lease time applies now, not after the old interval

    def alive(self) -> bool:
        """False if the lease thread died or is stuck longer than any of its Redis calls can take."""
        if not self.config.scheduler.enabled:
            return True
        thread = self._thread
        return (thread is not None and thread.is_alive()
                and time.monotonic() - self._beat < self._wedged_after_s())

    def is_leader(self) -> bool:
        return self._aps is not None and self._lease.held()

    def run_now(self, job_id: str) -> bool:
        """Fire a scheduled job at once; False unless this instance leads and the job is enabled."""
        with self._lock:
            if self._aps is None or self._aps.get_job(job_id) is None:
                return False
            self._aps.modify_job(job_id, next_run_time=dt.datetime.now(ZoneInfo(self.config.scheduler.timezone)))
        return True

    # --- the lease thread ---

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._beat = time.monotonic()
            self._wake.clear()
            try:
                self._tick()
            except Exception:  # the thread must outlive any surprise; alive() would report it dead
                log.exception("scheduler: lease check failed: instance=%s", self.instance_id)
            self._wake.wait(self._pause_s())

    def _tick(self) -> None:
        lease = self._lease
        try:
            if lease.held():
                if not lease.renew():
                    log.warning("scheduler: lease lost to another instance: instance=%s", self.instance_id)
            elif lease.acquire():
                log.info("scheduler: lease acquired: instance=%s lease_s=%d", self.instance_id, lease.lease_s)
        except REDIS_ERRORS as e:
            if self._redis_ok:
                log.warning("scheduler: Redis unavailable, lease not renewed: instance=%s leader_for_s=%.1f "
                            "error=%s", self.instance_id, lease.remaining_s(), type(e).__name__)
            self._redis_ok = False
        else:
            if not self._redis_ok:
                log.info("scheduler: Redis answers again: instance=%s", self.instance_id)
            self._redis_ok = True
        if lease.held():
            self._promote()
        else:
            self._demote("lease not held")

    def _pause_s(self) -> float:
        interval = self.config.scheduler.lease_s / 3
        lease = self._lease
        if lease.held():  # wake when our belief ends, to stop scheduling on time
            return min(interval, max(0.05, lease.remaining_s()))
        # A follower tries again as the holder's lease runs out: a dead leader is replaced within the
        # lease time of its last renewal, not up to a third of it later.
        return min(interval, max(0.05, lease.free_in_s + 0.02))

    def _promote(self) -> None:
        with self._lock:
            if self._aps is not None or self._stopping.is_set():
                return
            aps = BackgroundScheduler(
                timezone=self.config.scheduler.timezone, executors={"default": ThreadPoolExecutor(
                    len(JOBS), pool_kwargs={"thread_name_prefix": "tds-scheduler-job"})},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S})
            aps.start()
            self._aps = aps
            enabled = self._sync_jobs(resume=True)
        log.info("scheduler: leading: instance=%s timezone=%s jobs=%s", self.instance_id,
                 self.config.scheduler.timezone, ",".join(enabled) or "none")

    def _demote(self, reason: str) -> None:
        with self._lock:
            aps, self._aps = self._aps, None
        if aps is None:
            return
        try:
            aps.shutdown(wait=False)  # a job already sending finishes on its own; it checked the lease
        except SchedulerNotRunningError:
            pass
        level = logging.INFO if reason == "stopping" else logging.WARNING
        log.log(level, "scheduler: not leading any more: instance=%s reason=%s", self.instance_id, reason)

    def _halt(self, release: bool) -> None:
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self._call_bound_s() + 1)
            if thread.is_alive():
                log.warning("scheduler: lease thread still in a Redis call; leaving it: instance=%s",
                            self.instance_id)
        self._demote("stopping")
        if release:
            try:
                self._lease.release()
            except REDIS_ERRORS as e:
                log.warning("scheduler: lease not released, it expires in lease_s: instance=%s error=%s",
                            self.instance_id, type(e).__name__)

    # --- jobs ---

    def _sync_jobs(self, resume: bool) -> list[str]:
        """Make the APScheduler jobs match the configuration; record triggers and next runs."""
        cfg = self.config.scheduler
        now = dt.datetime.now(ZoneInfo(cfg.timezone))
        previous = self._read_status() if resume else {}
        schedule: dict[str, dict] = {}
        for spec in JOBS:
            expr = self.config.get(spec.config_key)
            trigger = crontab.trigger(expr, cfg.timezone)
            if trigger is None:
                if self._aps.get_job(spec.id) is not None:
                    self._aps.remove_job(spec.id)
                schedule[spec.id] = {"trigger": "off", "next_run": None}
                continue
            extra = {}
            missed = _missed_run(previous.get(spec.id), expr, now)
            if missed is not None:
                log.info("scheduler: run missed during the change of leader runs now: job=%s due=%s",
                         spec.id, missed.isoformat())
                extra["next_run_time"] = missed
            job = self._aps.add_job(self._fire, trigger, args=(spec.id,), id=spec.id, name=spec.name,
                                    replace_existing=True, **extra)
            schedule[spec.id] = {"trigger": expr, "next_run": _iso(job.next_run_time)}
        self._write_status(schedule)
        return [job_id for job_id, s in schedule.items() if s["trigger"] != "off"]

    def _fire(self, job_id: str) -> None:
        """Runs in an APScheduler executor thread: send the job's messages, record and count the outcome."""
        if not self._lease.held():
            log.warning("scheduler: job skipped, lease not held: job=%s instance=%s", job_id, self.instance_id)
            return
        started = dt.datetime.now(ZoneInfo(self.config.scheduler.timezone))
        try:
            report = BY_ID[job_id].send(self._context())
        except Exception as e:  # recorded and counted; the next run tries again
            outcome, error = "error", _describe(e)
            log.warning("scheduler: job failed: job=%s error=%s", job_id, error)
        else:
            outcome, error = "ok", None
            log.info("scheduler: job done: job=%s %s", job_id, report)
        scheduler_job_runs.labels(job_id, outcome).inc()
        self._write_status({job_id: {"last_run": started.isoformat(), "outcome": outcome, "error": error,
                                     "next_run": self._next_run(job_id)}})

    def _next_run(self, job_id: str) -> str | None:
        aps = self._aps
        try:
            # get_job waits for APScheduler's store lock, which it holds until this run's successor
            # time is stored: what we read is the next run, not this one.
            job = aps.get_job(job_id) if aps is not None else None
        except Exception:
            return None
        return _iso(job.next_run_time) if job is not None else None

    def _context(self) -> JobContext:
        with self._context_lock:
            if self._engine is None:
                self._engine = make_engine(self.config, pool_size=1, application_name="tds-scheduler")
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(make_broker(self.config), origin="scheduler")
            return JobContext(self.config, self._engine, self._dispatcher)

    def _drop_context(self, close: bool) -> None:
        with self._context_lock:
            if self._owns_engine and self._engine is not None:
                self._engine.dispose()  # connections in use are discarded when returned, not broken
                self._engine = None
            if self._owns_dispatcher and self._dispatcher is not None:
                if close:
                    self._dispatcher.broker.client.close()
                self._dispatcher = None

    # --- the status hash ---

    def _read_status(self) -> dict[str, dict]:
        try:
            return read_status(self._client, self.config.redis.namespace)
        except REDIS_ERRORS as e:
            log.warning("scheduler: job status unreadable: error=%s", type(e).__name__)
            return {}

    def _write_status(self, updates: dict[str, dict]) -> None:
        ns = self.config.redis.namespace
        with self._status_lock:
            try:
                current = read_status(self._client, ns)
                merged = {job_id: json.dumps({**current.get(job_id, {}), **fields})
                          for job_id, fields in updates.items()}
                self._client.hset(status_key(ns), mapping=merged)
            except REDIS_ERRORS as e:
                log.warning("scheduler: job status not recorded: jobs=%s error=%s", ",".join(updates),
                            type(e).__name__)

    # --- bounds ---

    def _new_lease(self, config: Config) -> Lease:
        return Lease(self._client, leader_key(config.redis.namespace), self.instance_id, config.scheduler.lease_s)

    def _call_bound_s(self) -> float:
        # One Redis call: connect, a health-check PING, the command; each bounded by the socket timeout
        # (the client from redis_client() does not retry).
        return 3 * self.config.redis.socket_timeout_s

    def _wedged_after_s(self) -> float:
        # One pass makes at most four calls: acquire or renew and, on becoming leader, two reads and a
        # write of the job status.
        return self.config.scheduler.lease_s / 3 + 4 * self._call_bound_s() + 5


def _redis_settings(config: Config) -> tuple:
    return config.redis.url, config.redis.namespace, config.redis.socket_timeout_s


def _context_settings(config: Config) -> dict:
    return {k: v for k, v in config.values.items() if k.startswith(("database.", "redis."))}


def _missed_run(record: dict | None, expr: str, now: dt.datetime) -> dt.datetime | None:
    """The run the previous leader recorded as next, if it is past (not run) and still within grace."""
    if not record or record.get("trigger") != expr or not record.get("next_run"):
        return None
    try:
        due = dt.datetime.fromisoformat(record["next_run"])
    except (TypeError, ValueError):
        return None
    if due.tzinfo is None or not dt.timedelta(0) <= now - due <= dt.timedelta(seconds=MISFIRE_GRACE_S):
        return None
    return due


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _describe(error: Exception) -> str:
    if isinstance(error, JobError):
        return str(error)
    return described(error)
