"""The daily budget of Zoho calls, counted in Redis by every process of every TDS sharing it.

Each call is granted or refused before it is sent, by purpose: scheduled work up to ``zoho.daily_budget``,
backfill work only from what scheduled work will not need today, manual work always (counted); Zoho's
own ``X-Rate-Limit-Remaining`` wins when it is lower. Redis decides each grant atomically; PostgreSQL
(``tds_zoho_calls``, ``tds_zoho_quota_stops``) keeps the day's counts and Zoho's quota stops, so a Redis
flush or restart never gives the daemon a second day's budget, and an unreachable PostgreSQL never stops
a grant. Keys, seeding and outages: docs/ARCHITECTURE.md, "The daily budget of Zoho calls".
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import exc, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from tds_daemon.store.schema import zoho_calls, zoho_quota_stops

log = logging.getLogger(__name__)

PURPOSES = ("scheduled", "backfill", "manual")
KEEP_DAYS_S = 3 * 86400
RESERVE_MARGIN = 1.2  # yesterday's scheduled calls, plus this much, are kept for today's jobs
STOP_SLACK = dt.timedelta(minutes=1)  # a stop this close to one already recorded is the same stop
DB_RETRY_S = 15.0  # after PostgreSQL failed to save a count, how long Redis counts alone before asking again

# KEYS[1] the day's hash, KEYS[2] Zoho's remaining; ARGV[1] purpose, ARGV[2] ceiling of the day's total
# (-1: none), ARGV[3] Zoho's remaining must stay above this, ARGV[4] ttl of the hash.
# Returns {granted 0|1, total after, Zoho's remaining after (-1: unknown)}; {-1, 0, -1} when the day's hash
# is missing: nothing counted, it must be seeded first.
SPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, -1} end
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local zr = redis.call('GET', KEYS[2])
local ceiling = tonumber(ARGV[2])
if ceiling >= 0 then
  if total >= ceiling then return {0, total, zr and tonumber(zr) or -1} end
  if zr and tonumber(zr) <= tonumber(ARGV[3]) then return {0, total, tonumber(zr)} end
end
redis.call('HINCRBY', KEYS[1], 'total', 1)
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if zr then zr = redis.call('DECR', KEYS[2]) end
return {1, total + 1, zr and tonumber(zr) or -1}
"""

# KEYS[1] a day's hash; ARGV[1] its ttl, then field, figure, field, figure ...: each field becomes the larger
# of its figure and what the hash holds (the hash is created if missing).
SEED = """
for i = 2, #ARGV, 2 do
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > have then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


@dataclass(frozen=True)
class Grant:
    granted: bool
    total: int  # TDS's calls today, this one included when granted
    zoho_remaining: int | None  # what Zoho last said is left today (counted down since), if known


@dataclass(frozen=True)
class BudgetState:
    day: str
    budget: int
    used: int
    by_purpose: dict[str, int]
    zoho_remaining: int | None
    remaining: int  # min(budget - used, Zoho's remaining), never below 0
    reserve: int  # calls kept for the scheduled jobs still to run today
    backfill_left: int  # what the backfill may still spend today
    resets_at: str  # the start of the next day, ISO 8601

    def as_json(self) -> dict:
        return dict(self.__dict__)


class Budget:
    def __init__(self, client: redis.Redis, namespace: str, daily_budget: int, timezone: str = "UTC",
                 engine: Engine | None = None):
        """``engine``: where the day's count is kept beside Redis; without one, Redis alone counts."""
        self.client, self.namespace, self.daily_budget = client, namespace, daily_budget
        self.tz = ZoneInfo(timezone)
        self.engine = engine
        self._spend = client.register_script(SPEND)
        self._seed = client.register_script(SEED)
        self._lock = threading.Lock()
        self._unsaved: dict[tuple[dt.date, str], int] = {}  # granted calls PostgreSQL has not had yet
        self._db_retry_at = 0.0  # monotonic: PostgreSQL is not asked to save before then
        self._stop_saved: dt.datetime | None = None  # the latest quota stop this object recorded

    @classmethod
    def from_config(cls, config, client: redis.Redis, engine: Engine | None = None) -> Budget:
        return cls(client, config.redis.namespace, config.zoho.daily_budget, config.scheduler.timezone, engine)

    def day(self, now: dt.datetime | None = None) -> dt.date:
        return (now or dt.datetime.now(dt.UTC)).astimezone(self.tz).date()

    def key(self, day: dt.date) -> str:
        return f"{self.namespace}:zoho:calls:{day.isoformat()}"

    @property
    def remaining_key(self) -> str:
        return f"{self.namespace}:zoho:remaining"

    def spend(self, purpose: str) -> Grant:
        """Count one call of ``purpose`` if the budget allows it (manual calls always); atomic across processes.

        The day's count in Redis is first seeded from PostgreSQL when Redis has lost it, and a granted call
        is added to PostgreSQL too (see the module's docstring)."""
        day = self.day()
        if purpose == "manual":
            ceiling, floor = -1, 0
        elif purpose == "backfill":
            reserve = self._reserve(day)
            ceiling, floor = max(0, self.daily_budget - reserve), reserve
        else:
            ceiling, floor = self.daily_budget, 0
        for _ in range(3):  # a flush between seeding and spending sends it round again
            granted, total, zoho = self._spend(keys=[self.key(day), self.remaining_key],
                                               args=[purpose, ceiling, floor, KEEP_DAYS_S])
            if int(granted) >= 0:
                break
            self._restore(day)
            if purpose == "backfill":  # yesterday's figure may have come back with it
                reserve = self._reserve(day)
                ceiling, floor = max(0, self.daily_budget - reserve), reserve
        else:
            raise redis.RedisError("the day's count of Zoho calls vanished from Redis three times in a row")
        if int(granted):
            figures = self._save(day, purpose)
            if figures and sum(figures.values()) > int(total):
                self._raise_redis(day, figures)  # Redis had lost calls PostgreSQL kept: the larger wins
        return Grant(bool(granted), int(total), None if int(zoho) < 0 else int(zoho))

    def note_zoho(self, remaining: int, reset_s: float) -> None:
        """Zoho said ``remaining`` calls are left until its reset in ``reset_s`` seconds; none left is a stop
        of background work until then, recorded in PostgreSQL too."""
        if reset_s <= 0:
            return
        self.client.set(self.remaining_key, max(0, remaining), px=int(reset_s * 1000))
        if remaining <= 0:
            self._save_stop(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=reset_s))

    def quota_spent(self, reset_s: float) -> dt.datetime:
        """Zoho refused a call because the organization's daily quota is spent (code 45): every process's
        background work stops until Zoho's reset in ``reset_s`` seconds; returns that time (UTC)."""
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max(1.0, reset_s))
        self.client.set(self.remaining_key, 0, px=max(1000, int(reset_s * 1000)))
        self._save_stop(until)
        return until.replace(microsecond=0)

    # --- PostgreSQL beside Redis ------------------------------------------------------------------------

    def _save(self, day: dt.date, purpose: str) -> dict[str, int] | None:
        """Add this call (and any PostgreSQL missed) to ``tds_zoho_calls``; the day's figures per purpose, or
        None when PostgreSQL was not asked or did not answer (the calls wait in this object)."""
        with self._lock:
            self._unsaved[(day, purpose)] = self._unsaved.get((day, purpose), 0) + 1
            if self.engine is None or time.monotonic() < self._db_retry_at:
                return None
            unsaved, self._unsaved = self._unsaved, {}
        try:
            with self.engine.begin() as conn:
                for (d, p), n in sorted(unsaved.items()):
                    stmt = insert(zoho_calls).values(day=d, purpose=p, calls=n)
                    conn.execute(stmt.on_conflict_do_update(
                        index_elements=[zoho_calls.c.day, zoho_calls.c.purpose],
                        set_={"calls": zoho_calls.c.calls + stmt.excluded.calls}))
                rows = conn.execute(select(zoho_calls.c.purpose, zoho_calls.c.calls).where(zoho_calls.c.day == day))
                return {r.purpose: int(r.calls) for r in rows}
        except exc.SQLAlchemyError as e:
            with self._lock:
                for k, n in unsaved.items():
                    self._unsaved[k] = self._unsaved.get(k, 0) + n
                warn, self._db_retry_at = self._db_retry_at == 0.0, time.monotonic() + DB_RETRY_S
            if warn:
                log.warning("Zoho calls not saved in PostgreSQL (%s): Redis keeps counting them, and they are "
                            "saved when the database answers", type(e).__name__)
            return None

    def _save_stop(self, until: dt.datetime) -> None:
        until = until.replace(microsecond=0)
        if self.engine is None or (self._stop_saved is not None and self._stop_saved >= until - STOP_SLACK):
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(zoho_quota_stops.delete().where(zoho_quota_stops.c.until < func.now()))
                conn.execute(insert(zoho_quota_stops).values(until=until).on_conflict_do_nothing())
            self._stop_saved = until
        except exc.SQLAlchemyError as e:  # Redis holds the stop until the reset regardless
            log.warning("Zoho's daily quota stop not saved in PostgreSQL (%s): only Redis holds it",
                        type(e).__name__)

    def _db_read(self, days: list[dt.date]) -> tuple[dict[dt.date, dict[str, int]], dt.datetime | None]:
        """PostgreSQL's figures of ``days`` and the quota stop still in force; nothing when it cannot be read."""
        if self.engine is None:
            return {}, None
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(zoho_calls).where(zoho_calls.c.day.in_(days))).all()
                stop = conn.execute(select(func.max(zoho_quota_stops.c.until))
                                    .where(zoho_quota_stops.c.until > func.now())).scalar_one()
        except exc.SQLAlchemyError as e:
            log.warning("the day's Zoho calls could not be read from PostgreSQL (%s): Redis's count stands",
                        type(e).__name__)
            return {}, None
        figures: dict[dt.date, dict[str, int]] = {}
        for r in rows:
            figures.setdefault(r.day, {})[r.purpose] = int(r.calls)
        return figures, stop

    def _restore(self, day: dt.date) -> None:
        """Seed Redis from PostgreSQL: today's hash (created, even empty), yesterday's when PostgreSQL has it,
        and a quota stop still in force."""
        yesterday = day - dt.timedelta(days=1)
        figures, stop = self._db_read([day, yesterday])
        self._raise_redis(day, figures.get(day, {}))
        if figures.get(yesterday):
            self._raise_redis(yesterday, figures[yesterday])
        if stop is not None:
            ms = int((stop - dt.datetime.now(dt.UTC)).total_seconds() * 1000)
            if ms > 0:
                self.client.set(self.remaining_key, 0, px=ms)

    def _raise_redis(self, day: dt.date, figures: dict[str, int]) -> None:
        args: list[object] = [KEEP_DAYS_S, "total", sum(figures.values())]
        for purpose, n in figures.items():
            args += [purpose, n]
        self._seed(keys=[self.key(day)], args=args)

    # --- the figures --------------------------------------------------------------------------------------

    def _counts(self, day: dt.date) -> dict[str, int]:
        raw = self.client.hgetall(self.key(day))
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    def _expected_scheduled(self, yesterday: dict[str, int]) -> int:
        """Scheduled calls a whole day is expected to need: yesterday's (with a margin), or half the budget
        when there is no yesterday."""
        return round(yesterday.get("scheduled", 0) * RESERVE_MARGIN) if yesterday else self.daily_budget // 2

    def _reserve(self, day: dt.date, today: dict[str, int] | None = None,
                 yesterday: dict[str, int] | None = None) -> int:
        """Scheduled calls still expected today: a day's expectation less what scheduled work spent today."""
        if yesterday is None:
            yesterday = self._counts(day - dt.timedelta(days=1))
        if today is None:
            today = self._counts(day)
        return max(0, self._expected_scheduled(yesterday) - today.get("scheduled", 0))

    def backfill_per_day(self) -> int:
        """What the backfill may spend in a whole day, at today's expectation of scheduled calls (yesterday's
        figure the larger of Redis's and PostgreSQL's)."""
        yesterday = self.day() - dt.timedelta(days=1)
        figures, _ = self._db_read([yesterday])
        return max(0, self.daily_budget - self._expected_scheduled(_larger(self._counts(yesterday),
                                                                           figures.get(yesterday, {}))))

    def state(self) -> BudgetState:
        """The day's figures, each the larger of Redis's and PostgreSQL's (Redis alone when PostgreSQL cannot
        be read)."""
        day = self.day()
        yesterday = day - dt.timedelta(days=1)
        figures, stop = self._db_read([day, yesterday])
        counts = _larger(self._counts(day), figures.get(day, {}))
        before = _larger(self._counts(yesterday), figures.get(yesterday, {}))
        used = counts.get("total", 0)
        zoho = self.client.get(self.remaining_key)
        zoho_remaining = int(zoho) if zoho is not None else 0 if stop is not None else None
        remaining = max(0, self.daily_budget - used)
        if zoho_remaining is not None:
            remaining = min(remaining, max(0, zoho_remaining))
        reserve = self._reserve(day, counts, before)
        backfill_left = max(0, min(self.daily_budget - reserve - used,
                                   (zoho_remaining - reserve) if zoho_remaining is not None else 1 << 62))
        resets = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.tz)
        return BudgetState(day.isoformat(), self.daily_budget, used,
                           {p: counts.get(p, 0) for p in PURPOSES}, zoho_remaining, remaining, reserve,
                           backfill_left, resets.isoformat())


def _larger(redis_counts: dict[str, int], db_counts: dict[str, int]) -> dict[str, int]:
    """Per purpose the larger figure, and a total no smaller than either side's."""
    if not db_counts:
        return redis_counts
    merged = {p: max(redis_counts.get(p, 0), db_counts.get(p, 0)) for p in set(redis_counts) | set(db_counts)}
    merged["total"] = max(redis_counts.get("total", 0), sum(db_counts.values()),
                          sum(n for p, n in merged.items() if p != "total"))
    return merged
