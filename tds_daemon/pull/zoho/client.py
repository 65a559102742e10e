"""The Zoho API client: one shared rate limiter, one shared token, classified errors, pagination.

Every attempt waits for the shared limiter, is counted against the day's budget (``budget.py``), holds one
of the shared concurrency slots (``slots.py``), asks the app's circuit breaker, and has connect and read
timeouts; Zoho's envelope is checked (a non-zero ``code`` is an error even under HTTP 200). Timeouts and
5xx are retried with backoff, a 429 is waited out at most ``MAX_LIMITED`` times, a 401 refreshes the
token once, and code 45 (the daily quota spent) stops background calls until Zoho's reset
(``ZohoQuotaSpent``). What each answer tells the breaker and the budget: docs/ARCHITECTURE.md,
"The Zoho client".
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import redis
from sqlalchemy.engine import Engine

from tds_daemon import jsoncodec, tls, zohovalues
from tds_daemon.entities import EntitySpec
from tds_daemon.guard.breakers import HALF_OPEN, Breaker, Breakers, Decision, clock
from tds_daemon.metrics import zoho_requests
from tds_daemon.pull.zoho.budget import Budget
from tds_daemon.pull.zoho.errors import (
    ZohoAuthError,
    ZohoBreakerOpen,
    ZohoBudgetSpent,
    ZohoError,
    ZohoInvalidId,
    ZohoQuotaSpent,
    ZohoRateLimited,
    ZohoUnavailable,
)
from tds_daemon.pull.zoho.ratelimit import RateLimiter
from tds_daemon.pull.zoho.slots import Slots
from tds_daemon.pull.zoho.tokens import TokenSource

log = logging.getLogger(__name__)
PER_PAGE = 200
BUDGET_ALERT = "budget_spent"
TRIAL_POLL_S = 0.2  # how often a call refused by a half-open breaker (its trials out) asks again
MAX_LIMITED = 5  # 429s (per minute, concurrency) one call waits out before it gives up with ZohoRateLimited
QUOTA_SPENT = 45  # Zoho's code for a 429 of the daily quota: nothing more until its reset
QUOTA_SPENT_TEXT = "Zoho's daily API quota for the organization is spent"


def object_path(spec: EntitySpec, zoho_id: object) -> str:
    """The API path of one object of ``spec`` (``/items/{id}``), the one way an id goes into a Zoho URL:
    checked to be a Zoho id first (digits), else ZohoInvalidId and nothing is sent."""
    try:
        return f"{spec.list_path}/{zohovalues.checked_id(zoho_id)}"
    except zohovalues.InvalidValue as e:
        raise ZohoInvalidId(f"not asked: {spec.id_field} {e}", app=spec.app) from None


@dataclass(frozen=True)
class Page:
    objects: list[dict]
    has_more: bool
    page: int


class ZohoClient:
    def __init__(self, config, redis_client: redis.Redis, *, http: httpx.Client | None = None,
                 limit_wait_s: float = 120.0, breakers: Breakers | None = None, alerts=None,
                 purpose: str = "scheduled", engine: Engine | None = None, stop: threading.Event | None = None):
        z = config.zoho
        self.base = {"books": config.zoho_books_url.rstrip("/"), "inventory": config.zoho_inventory_url.rstrip("/")}
        self.organization_id = z.organization_id
        self.max_attempts = z.max_attempts
        self.trial_wait_s = z.timeout_s + 5.0  # a trial's verdict comes within one request's time
        self.limit_wait_s = limit_wait_s
        self.stop = stop  # set when the process stops: a call waiting for the rate limit gives up (ZohoStopped)
        self.http = http or httpx.Client(timeout=httpx.Timeout(z.timeout_s, connect=min(10.0, z.timeout_s)),
                                         headers={"Accept": "application/json", "User-Agent": "tds"},
                                         verify=tls.context())
        # What this client's calls are for decides how much of the day's budget they may spend (budget.py);
        # background reads take at most half of each app's minute, so that scheduled pulls keep their pace.
        self.purpose = purpose
        per_minute = max(1, z.requests_per_minute // 2) if purpose == "backfill" else z.requests_per_minute
        self.limiter = RateLimiter(redis_client, config.redis.namespace, per_minute)
        # The day's count is kept in PostgreSQL too (``engine``, else the alerts' engine): see budget.py.
        self.budget = Budget.from_config(config, redis_client, engine if engine is not None else alerts)
        self.timezone = config.scheduler.timezone
        self.slots = Slots(redis_client, config.redis.namespace, z.max_concurrency, z.timeout_s + 10.0)
        self.alerts = alerts
        self._warned_day: str | None = None  # the day a manual call past the budget was warned of
        self._alerted_day: str | None = None  # the day this client raised the budget alert
        self.tokens = TokenSource(config, redis_client, self.http)
        # ``alerts`` (an engine) lets a breaker transition raise or resolve its alert.
        self.breakers = breakers or Breakers.from_config(config, redis_client, alerts=alerts)
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests this client sent to the API (for a sync run's record)

    def close(self) -> None:
        self.http.close()

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def get(self, app: str, path: str, params: dict | None = None) -> dict:
        """GET one API path; the parsed envelope. Raises ZohoError (or a subclass)."""
        return self._get(app, path, params, None)

    def get_object(self, spec: EntitySpec, zoho_id: str) -> dict:
        """The single-object read of one object: the whole object, in its envelope. ZohoInvalidId (nothing
        sent) when ``zoho_id`` is not a Zoho id."""
        return self.get(spec.app, object_path(spec, zoho_id))

    def get_bytes(self, app: str, path: str, max_bytes: int) -> tuple[str, bytes]:
        """GET a path that answers bytes, not JSON (an item's image): (its Content-Type, the bytes).

        A body larger than ``max_bytes`` is not read past the cap: ZohoError (permanent, code
        ``too_large``). Every other answer is handled as ``get`` handles it.
        """
        return self._get(app, path, None, max_bytes)

    def _get(self, app: str, path: str, params: dict | None, max_bytes: int | None):
        url = self.base[app] + path
        query = {**(params or {}), "organization_id": self.organization_id}
        breaker = self.breakers.app(app)
        attempt, refreshed, limited = 0, False, 0
        paid = False  # this attempt spends the unit of one Zoho answered 429 (and did not count)
        error: ZohoError | None = None
        while True:
            decision = self._permit(breaker)
            if not decision:
                when = (f"open until {clock(decision.retry_at)}" if decision.state == "open"
                        else "half-open with its trial calls in flight")
                last = f" (last error: {error.message})" if error else ""
                raise ZohoBreakerOpen(f"circuit breaker {breaker.name} is {when}; no request sent for GET {path}"
                                      f"{last}", breaker=breaker.name, retry_at=decision.retry_at, app=app)
            verdict: bool | None = None  # what this attempt tells the breaker: None = nothing
            try:
                self.limiter.acquire(app, self.limit_wait_s, self.stop)
                token = self.tokens.token()
                if not paid:
                    self._spend(app, path)
                paid = False
                try:
                    with self.slots.slot(self.limit_wait_s, app):
                        self._count()
                        r, blob = self._send(url, query, token, max_bytes, path, app)
                except httpx.TimeoutException:
                    zoho_requests.labels(app, "timeout").inc()
                    verdict, error = False, ZohoUnavailable(f"GET {path} timed out", app=app)
                except httpx.HTTPError as e:
                    zoho_requests.labels(app, "error").inc()
                    verdict, error = False, ZohoUnavailable(f"GET {path} failed: {_describe(e)}", app=app)
                else:
                    zoho_requests.labels(app, str(r.status_code)).inc()
                    self._note_limits(r)
                    if r.status_code != 429:
                        verdict = r.status_code < 500  # Zoho answered: it is available
                    if blob is not None:
                        return r.headers.get("Content-Type", ""), blob
                    body = _json(r)
                    if r.status_code == 200 and body.get("code", 0) == 0 and body:
                        return body
                    if r.status_code == 401:
                        if refreshed:
                            raise ZohoAuthError(f"a freshly refreshed token was refused on GET {path} "
                                                f"({body.get('message', 'HTTP 401')}); check the OAuth client's "
                                                "scopes and zoho.organization_id", code=body.get("code"), status=401,
                                                app=app)
                        self.tokens.discard(token)
                        refreshed = True
                        continue
                    if r.status_code == 429:
                        if body.get("code") == QUOTA_SPENT:
                            raise self._quota_spent(r, body, path, app)
                        wait = _retry_after(r)
                        limited += 1
                        if wait > self.limit_wait_s or limited > MAX_LIMITED:
                            raise ZohoRateLimited(f"Zoho says wait {wait:.0f}s ({limited} answers 429 to GET "
                                                  f"{path}): {body.get('message', '')}", retry_after=wait,
                                                  code=body.get("code"), status=429, app=app)
                        time.sleep(wait)  # our pace, not Zoho failing: no attempt used
                        paid = True
                        continue
                    message = body.get("message") or r.reason_phrase or "no message"
                    if r.status_code >= 500:
                        error = ZohoUnavailable(f"GET {path}: {message}", code=body.get("code"),
                                                status=r.status_code, app=app)
                    else:
                        raise ZohoError(f"GET {path}: {message}", code=body.get("code"), status=r.status_code,
                                        app=app)
            finally:
                if verdict is None:
                    if decision.state == "half_open":
                        breaker.release()  # a trial permit whose call told nothing
                else:
                    breaker.record(verdict)
            attempt += 1
            if attempt >= self.max_attempts:
                raise error
            time.sleep(_backoff(attempt))

    def _send(self, url: str, query: dict, token: str, max_bytes: int | None, path: str,
              app: str) -> tuple[httpx.Response, bytes | None]:
        """One HTTP request: the response (its body read) and, when bytes were asked for and Zoho answered
        200 with something other than JSON, those bytes, read no further than ``max_bytes``."""
        headers = {"Authorization": f"Zoho-oauthtoken {token}"}
        if max_bytes is None:
            return self.http.get(url, params=query, headers=headers), None
        with self.http.stream("GET", url, params=query, headers=headers) as r:
            if r.status_code != 200 or r.headers.get("Content-Type", "").startswith("application/json"):
                r.read()
                return r, None
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise ZohoError(f"GET {path}: the answer is larger than images.max_bytes ({max_bytes} bytes); "
                                    "not stored", code="too_large", status=200, app=app)
            return r, bytes(data)

    def _spend(self, app: str, path: str) -> None:
        """Count this call against the day's budget, or raise ZohoBudgetSpent (no request sent)."""
        grant = self.budget.spend(self.purpose)
        if grant.granted:
            if self.purpose == "manual" and grant.total > self.budget.daily_budget:
                day = self.budget.day().isoformat()
                if self._warned_day != day:
                    self._warned_day = day
                    log.warning("past the daily Zoho budget: %d calls today, zoho.daily_budget is %d (a manual "
                                "sync is allowed; background work waits for tomorrow)", grant.total,
                                self.budget.daily_budget)
            return
        state = self.budget.state()
        why = (f"Zoho says {grant.zoho_remaining} calls are left today for the whole organization"
               if grant.zoho_remaining is not None and grant.total < self.budget.daily_budget
               and self.purpose != "backfill" else
               f"{grant.total} of zoho.daily_budget={self.budget.daily_budget} calls spent today"
               + (f", {state.reserve} kept for scheduled jobs" if self.purpose == "backfill" else ""))
        message = (f"daily Zoho budget spent for {self.purpose} work: {why}; no request sent for GET {path}; "
                   f"it resets at {state.resets_at}")
        if self.purpose == "scheduled":
            self._alert_spent(message)
        raise ZohoBudgetSpent(message, app=app)

    def _quota_spent(self, r: httpx.Response, body: dict, path: str, app: str) -> ZohoQuotaSpent:
        """Zoho's daily quota is spent: record the stop until its reset (every process's background calls
        end until then) and describe it in one line, the reset in local time and UTC."""
        reset_s = _reset_after(r)
        if reset_s is None:  # no figure from Zoho: the end of TDS's day
            resets = dt.datetime.fromisoformat(self.budget.state().resets_at)
            reset_s = (resets - dt.datetime.now(dt.UTC)).total_seconds()
        until = self.budget.quota_spent(reset_s)
        local = until.astimezone(self.budget.tz)
        message = (f"{QUOTA_SPENT_TEXT} ({body.get('message') or 'code 45'}); "
                   f"it resets at {local:%Y-%m-%d %H:%M} {self.timezone} ({until:%Y-%m-%dT%H:%M:%SZ}), and no "
                   f"background call is sent until then; GET {path} refused")
        if self.purpose != "manual":
            log.warning("%s", message)
        if self.purpose == "scheduled":
            self._alert_spent(message)
        return ZohoQuotaSpent(message, resets_at=until, code=QUOTA_SPENT, status=429, app=app)

    def _alert_spent(self, message: str) -> None:
        day = self.budget.day().isoformat()
        if self.alerts is None or self._alerted_day == day:
            return
        self._alerted_day = day
        try:
            from tds_daemon.guard.alerts import raise_alert

            raise_alert(self.alerts, BUDGET_ALERT, "warning", message)
        except Exception as e:  # an alert not written does not change the refusal
            log.warning("budget alert not recorded: %s", type(e).__name__)

    def _note_limits(self, r: httpx.Response) -> None:
        """Believe Zoho's count of the calls left today (every integration's calls, not only ours)."""
        remaining, reset = r.headers.get("X-Rate-Limit-Remaining"), r.headers.get("X-Rate-Limit-Reset")
        if remaining is None or reset is None:
            return
        try:
            self.budget.note_zoho(int(remaining), float(reset))
        except (ValueError, redis.RedisError):
            pass

    def _permit(self, breaker: Breaker) -> Decision:
        """Ask the app's breaker; while it is half-open with every trial out, wait for their verdict a
        while (one request's time), so that pages fetched side by side do not fail for want of a permit."""
        decision = breaker.check()
        deadline = time.monotonic() + self.trial_wait_s
        while not decision and decision.state == HALF_OPEN and time.monotonic() < deadline:
            time.sleep(TRIAL_POLL_S)
            decision = breaker.check()
        return decision

    def list_page(self, spec: EntitySpec, page: int, *, per_page: int = PER_PAGE, newest_first: bool = True,
                  since: str | None = None) -> Page:
        params: dict[str, object] = {**dict(spec.list_params), "page": page, "per_page": per_page}
        if spec.modified_always:
            params.update(sort_column=spec.last_modified, sort_order="D" if newest_first else "A")
            if since:
                # Honoured by some endpoints, ignored by others (unconfirmed): the caller still stops at
                # its cursor, so this only saves pages where it works.
                params[spec.last_modified] = since
        body = self.get(spec.app, spec.list_path, params)
        objects = body.get(spec.list_key)
        if not isinstance(objects, list):
            raise ZohoError(f"GET {spec.list_path}: the answer has no list {spec.list_key!r}", app=spec.app)
        more = bool((body.get("page_context") or {}).get("has_more_page")) and bool(objects)
        return Page(objects, more, page)

    def iter_pages(self, spec: EntitySpec, **kw) -> Iterator[Page]:
        page = 1
        while True:
            result = self.list_page(spec, page, **kw)
            yield result
            if not result.has_more:
                return
            page += 1


def _describe(e: httpx.HTTPError) -> str:
    if isinstance(e, httpx.ConnectError):
        return "could not connect to Zoho (ConnectError)"
    if isinstance(e, httpx.RemoteProtocolError):
        return "Zoho closed the connection without an answer (RemoteProtocolError)"
    return type(e).__name__


def _json(r: httpx.Response) -> dict:
    try:
        body = jsoncodec.loads(r.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(r: httpx.Response) -> float:
    value = r.headers.get("Retry-After")
    if value:
        try:
            return max(0.5, float(value))
        except ValueError:
            pass
    return 60.0 - (time.time() % 60.0) + 0.5  # unknown: the next minute


def _reset_after(r: httpx.Response) -> float | None:
    """Seconds until Zoho's daily quota resets: ``X-Rate-Limit-Reset``, else ``Retry-After``; None if neither."""
    for name in ("X-Rate-Limit-Reset", "Retry-After"):
        try:
            value = float(r.headers.get(name, ""))
        except ValueError:
            continue
        if value > 0:
            return value
    return None


def _backoff(attempt: int, base: float = 0.5, cap: float = 15.0) -> float:
    return random.uniform(0, min(cap, base * 2 ** attempt))
