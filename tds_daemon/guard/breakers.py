"""Circuit breakers shared by every process of every TDS on one Redis: one per entity, one per Zoho app.

Names come from the entity registry: ``entity:<name>`` and ``zoho:<app>``; an app's state is kept under
its base URL and ``zoho.organization_id`` (``Breakers.from_config``), so a process configured for another
endpoint never moves the daemon's. The model is resilience4j's time-based breaker (closed, open,
half-open; ``breakers.*``); every transition happens in one Lua script (``tds_daemon.guard.breaker_lua``)
on the Redis server's clock, and only the process whose call made it logs it and raises or resolves
``breaker_open``. Callers decide what counts. A breaker that cannot reach Redis fails open: a Redis blip
never stops the daemon. The states in full: docs/ARCHITECTURE.md, "Circuit breakers".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from tds_daemon import entities
from tds_daemon.guard.breaker_lua import ACQUIRE, FORCE, RECORD, RELEASE, SNAPSHOT

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, HALF_OPEN, OPEN)
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # tds_breaker_state
ALERT_TYPE = "breaker_open"
_FAIL_OPEN_LOG_S = 30.0

@dataclass(frozen=True)
class Settings:
    failure_rate: float = 50.0  # percent of the calls in the window that opens the breaker
    window_s: int = 60
    min_calls: int = 10
    open_s: float = 60.0
    half_open_calls: int = 3

    @classmethod
    def from_config(cls, config) -> Settings:
        b = config.breakers
        return cls(float(b.failure_rate), int(b.window_s), int(b.min_calls), float(b.open_s),
                   int(b.half_open_calls))

    @property
    def open_ms(self) -> int:
        return max(1, int(self.open_s * 1000))


@dataclass(frozen=True)
class Decision:
    """The answer to "may I call?": ``state`` is the breaker's state once asked (half_open for a trial)."""

    allowed: bool
    state: str
    retry_at: dt.datetime | None = None  # when denied: when a call may be allowed again (at the earliest)

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Status:
    name: str
    state: str
    calls: int  # results in the window (closed) or trial results (half-open)
    failures: int
    failure_rate: float | None  # percent; None without calls
    since: dt.datetime | None  # last transition
    opened_at: dt.datetime | None
    retry_at: dt.datetime | None  # open: when the next call becomes a half-open trial
    reason: str | None  # what opened it: the failure rate, or an operator
    trials_given: int
    trials_ok: int
    trials_failed: int

    @property
    def value(self) -> int:
        return STATE_VALUES[self.state]

    def as_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None

        out: dict[str, Any] = {"name": self.name, "state": self.state, "calls": self.calls,
                               "failures": self.failures, "failure_rate": self.failure_rate,
                               "since": iso(self.since), "opened_at": iso(self.opened_at),
                               "retry_at": iso(self.retry_at), "reason": self.reason}
        if self.state == HALF_OPEN:
            out["half_open"] = {"trials_given": self.trials_given, "trials_ok": self.trials_ok,
                                "trials_failed": self.trials_failed}
        return out


def _time(ms) -> dt.datetime | None:
    ms = int(ms or 0)
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if ms else None


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def clock(moment: dt.datetime | None) -> str:
    """A retry time as operators read it in a message: 14:03:27 UTC."""
    return moment.astimezone(dt.UTC).strftime("%H:%M:%S UTC") if moment else "unknown"


@dataclass(frozen=True)
class Scope:
    """What an app's breaker guards: a Zoho base URL and organization (``key`` their digest)."""

    url: str
    organization_id: str

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.url.rstrip('/')}|{self.organization_id}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.url.rstrip('/')}, organization {self.organization_id or '(none)'}"


class Breaker:
    """One breaker. ``alerts`` is an engine: a transition to open raises ``breaker_open``, to closed resolves it.
    ``scope``: the endpoint it guards, part of its key (None: keyed by its name alone)."""

    def __init__(self, client: redis.Redis, namespace: str, name: str, settings: Settings, *, alerts=None,
                 scope: Scope | None = None):
        self.client, self.namespace, self.name, self.settings = client, namespace, name, settings
        self.alerts, self.scope = alerts, scope
        self.key = f"{namespace}:breaker:{name}" + (f"@{scope.key}" if scope else "")
        self.window_key = f"{self.key}:window"
        self._acquire = client.register_script(ACQUIRE)
        self._record = client.register_script(RECORD)
        self._release = client.register_script(RELEASE)
        self._force = client.register_script(FORCE)
        self._snapshot = client.register_script(SNAPSHOT)
        self._last_complaint = 0.0

    # --- the calls' side (fail open) ---

    def check(self) -> Decision:
        """May a call go now? Taking a half-open trial permit if it is one; allowed when Redis fails."""
        s = self.settings
        try:
            allowed, state, before, retry_at = self._acquire(keys=[self.key, self.window_key],
                                                             args=[s.open_ms, s.half_open_calls])
        except redis.RedisError as e:
            self._fail_open(e)
            return Decision(True, CLOSED)
        state, before = _text(state), _text(before)
        if state != before:
            self._transitioned(before, state, None)
        return Decision(bool(int(allowed)), state, _time(retry_at))

    def allow(self) -> bool:
        return self.check().allowed

    def record(self, success: bool) -> None:
        """The result of one allowed call."""
        s = self.settings
        try:
            state, before, rate, calls, failures, _retry_at = self._record(
                keys=[self.key, self.window_key],
                args=[1 if success else 0, s.failure_rate, s.window_s, s.min_calls, s.open_ms, s.half_open_calls])
        except redis.RedisError as e:
            self._fail_open(e)
            return
        state, before = _text(state), _text(before)
        if state != before:
            what = "trial calls" if before == HALF_OPEN else "calls in the window"
            self._transitioned(before, state, f"failure rate {_text(rate)}% of {int(calls)} {what}, "
                                              f"{int(failures)} failed")

    def release(self) -> None:
        """An allowed call that was not made after all (or whose result says nothing of availability)."""
        try:
            self._release(keys=[self.key])
        except redis.RedisError as e:
            self._fail_open(e)

    # --- the operators' side (errors raised) ---

    def status(self) -> Status:
        now, flat, calls, failures = self._snapshot(keys=[self.key, self.window_key], args=[self.settings.window_s])
        h = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        state = h.get("state", CLOSED)
        if state == HALF_OPEN:
            calls, failures = int(h.get("trial_ok", 0)) + int(h.get("trial_failed", 0)), int(h.get("trial_failed", 0))
        calls, failures = int(calls), int(failures)
        return Status(
            name=self.name, state=state, calls=calls, failures=failures,
            failure_rate=round(failures * 100 / calls, 2) if calls else None,
            since=_time(h.get("since")), opened_at=_time(h.get("opened_at")),
            retry_at=_time(h.get("retry_at")) if state == OPEN else None,
            reason=h.get("reason") if state != CLOSED else None,
            trials_given=int(h.get("trials", 0)), trials_ok=int(h.get("trial_ok", 0)),
            trials_failed=int(h.get("trial_failed", 0)))

    def state(self) -> str:
        return self.status().state

    def reset(self) -> str:
        """Close it now, with an empty window (an operator's decision); returns the state it was in."""
        before = _text(self._force(keys=[self.key, self.window_key], args=[CLOSED, self.settings.open_ms, ""]))
        if before != CLOSED:
            self._transitioned(before, CLOSED, "reset by an operator")
        return before

    def trip(self, reason: str = "opened by hand") -> str:
        """Open it now, for ``open_s`` (an operator's decision, or a test's); returns the state it was in."""
        before = _text(self._force(keys=[self.key, self.window_key], args=[OPEN, self.settings.open_ms, reason]))
        if before != OPEN:
            self._transitioned(before, OPEN, reason)
        return before

    # --- transitions ---

    def _transitioned(self, before: str, after: str, why: str | None) -> None:
        """Only the process whose call made the transition gets here: it logs and alerts, once."""
        detail = f" ({why})" if why else ""
        if self.scope is not None:
            detail += f" [{self.scope.describe()}]"
        if after == OPEN:
            retry = self.settings.open_s
            log.warning("breaker %s: %s -> open%s; calls refused for %gs", self.name, before, detail, retry)
            severity = "critical" if self.name.startswith("zoho:") else "warning"
            self._alert(lambda db: _raise(db, self.name, severity,
                                          f"circuit breaker {self.name} opened{detail}; calls refused for "
                                          f"{retry:g}s, then trial calls"))
        elif after == CLOSED:
            log.info("breaker %s: %s -> closed%s", self.name, before, detail)
            self._alert(lambda db: _resolve(db, self.name))
        else:
            log.info("breaker %s: %s -> %s%s; up to %d trial call(s)", self.name, before, after, detail,
                     self.settings.half_open_calls)

    def clear_alert(self) -> None:
        """Resolve this breaker's ``breaker_open`` alert, if one is open (never raises)."""
        self._alert(lambda db: _resolve(db, self.name))

    def _alert(self, action) -> None:
        if self.alerts is None:
            return
        try:
            action(self.alerts)
        except Exception as e:  # an alert that cannot be written must not fail the call that tripped it
            log.warning("breaker %s: could not write its alert: %s", self.name, type(e).__name__)

    def _fail_open(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_complaint >= _FAIL_OPEN_LOG_S:
            self._last_complaint = now
            # INFO: Redis being down is said loudly elsewhere (readiness, the broker, the rate limiter); this
            # only says the breaker stood aside, and must not add lines to a failing `tds sync`'s one.
            log.info("breaker %s: Redis unavailable (%s); calls allowed without a breaker", self.name,
                     type(error).__name__)


def _raise(db, name: str, severity: str, message: str) -> None:
    from tds_daemon.guard.alerts import raise_alert

    raise_alert(db, ALERT_TYPE, severity, message, entity=name)


def _resolve(db, name: str) -> None:
    from tds_daemon.guard.alerts import resolve

    resolve(db, ALERT_TYPE, entity=name)


def entity_name(entity: str) -> str:
    return f"entity:{entity}"


def app_name(app: str) -> str:
    return f"zoho:{app}"


APPS: tuple[str, ...] = tuple(sorted({e.app for e in entities.ENTITIES}))
NAMES: tuple[str, ...] = tuple([entity_name(e.name) for e in entities.ENTITIES] + [app_name(a) for a in APPS])


def redis_for_breakers(config) -> redis.Redis:
    """A Redis client for breakers alone: the configured socket timeouts, and no retries of its own.

    redis-py retries a failed command three times with backoff, seconds against a Redis that refuses
    connections (docs/PERFORMANCE.md); a breaker fails open instead, so an outage costs each call one
    refused connection.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = config.redis.socket_timeout_s
    return redis.Redis.from_url(config.redis.url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30, retry=Retry(NoBackoff(), 0))


class Breakers:
    """Every breaker of the registry, built once per process (the scripts are registered once)."""

    def __init__(self, client: redis.Redis, namespace: str, settings: Settings, *, alerts=None,
                 scopes: dict[str, Scope] | None = None):
        self.client, self.namespace, self.settings = client, namespace, settings
        self._alerts = alerts
        self.scopes = dict(scopes or {})  # app -> the endpoint its breaker guards
        self._lock = threading.Lock()
        self._by_name: dict[str, Breaker] = {}

    @classmethod
    def from_config(cls, config, client: redis.Redis, *, alerts=None) -> Breakers:
        org = config.zoho.organization_id
        scopes = {"books": Scope(config.zoho_books_url, org), "inventory": Scope(config.zoho_inventory_url, org)}
        return cls(client, config.redis.namespace, Settings.from_config(config), alerts=alerts, scopes=scopes)

    @property
    def alerts(self):
        return self._alerts

    @alerts.setter
    def alerts(self, engine) -> None:
        self._alerts = engine
        with self._lock:
            for b in self._by_name.values():
                b.alerts = engine

    def get(self, name: str) -> Breaker:
        """The breaker of that name; KeyError for a name the registry does not define."""
        if name not in NAMES:
            raise KeyError(name)
        with self._lock:
            b = self._by_name.get(name)
            if b is None:
                scope = self.scopes.get(name.split(":", 1)[1]) if name.startswith("zoho:") else None
                b = self._by_name[name] = Breaker(self.client, self.namespace, name, self.settings,
                                                  alerts=self._alerts, scope=scope)
            return b

    def entity(self, entity: str) -> Breaker:
        return self.get(entity_name(entity))

    def app(self, app: str) -> Breaker:
        return self.get(app_name(app))

    def statuses(self, names: Iterable[str] = NAMES) -> list[Status]:
        return [self.get(n).status() for n in names]
