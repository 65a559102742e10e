"""The daily budget of Zoho calls, counted in Redis by every process of every TDS sharing it.

Zoho caps calls per organization per day, for every integration of the company together. TDS spends
at most ``zoho.daily_budget`` of them a day, and decides before each call:

- **scheduled** work (scheduled and API-started pulls, statistics) may spend up to the budget;
- **backfill** work (detail reads, images) spends only what scheduled work will not need today: it
  leaves a reserve of the scheduled calls still expected (yesterday's scheduled calls, or half the
  budget on a first day), so scheduled jobs have first claim;
- **manual** work (``tds sync`` in a terminal) is counted and always allowed: an operator asked.

Zoho's own figure wins when it is lower: every answer's ``X-Rate-Limit-Remaining`` (calls left today
for the whole organization) is kept until its ``X-Rate-Limit-Reset``, counted down by each call TDS
makes meanwhile, and background work stops when it would reach zero (or the reserve).

Keys (``<ns>`` is ``redis.namespace``; the day is the calendar day in ``scheduler.timezone``):

- ``<ns>:zoho:calls:<YYYY-MM-DD>``: a hash, ``total`` and one field per purpose; kept three days;
- ``<ns>:zoho:remaining``: Zoho's last ``X-Rate-Limit-Remaining``, expiring at its reset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import redis

PURPOSES = ("scheduled", "backfill", "manual")
KEEP_DAYS_S = 3 * 86400
RESERVE_MARGIN = 1.2  # yesterday's scheduled calls, plus this much, are kept for today's jobs

# KEYS[1] the day's hash, KEYS[2] Zoho's remaining; ARGV[1] purpose, ARGV[2] ceiling of the day's total
# (-1: none), ARGV[3] Zoho's remaining must stay above this, ARGV[4] ttl of the hash.
# Returns {granted 0|1, total after, Zoho's remaining after (-1: unknown)}.
SPEND = """
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
    def __init__(self, client: redis.Redis, namespace: str, daily_budget: int, timezone: str = "UTC"):
        self.client, self.namespace, self.daily_budget = client, namespace, daily_budget
        self.tz = ZoneInfo(timezone)
        self._spend = client.register_script(SPEND)

    @classmethod
    def from_config(cls, config, client: redis.Redis) -> Budget:
        return cls(client, config.redis.namespace, config.zoho.daily_budget, config.scheduler.timezone)

    def day(self, now: dt.datetime | None = None) -> dt.date:
        return (now or dt.datetime.now(dt.UTC)).astimezone(self.tz).date()

    def key(self, day: dt.date) -> str:
        return f"{self.namespace}:zoho:calls:{day.isoformat()}"

    @property
    def remaining_key(self) -> str:
        return f"{self.namespace}:zoho:remaining"

    def spend(self, purpose: str) -> Grant:
        """Count one call of ``purpose`` if the budget allows it (manual calls always); atomic across processes."""
        day = self.day()
        if purpose == "manual":
            ceiling, floor = -1, 0
        elif purpose == "backfill":
            reserve = self._reserve(day)
            ceiling, floor = max(0, self.daily_budget - reserve), reserve
        else:
            ceiling, floor = self.daily_budget, 0
        granted, total, zoho = self._spend(keys=[self.key(day), self.remaining_key],
                                           args=[purpose, ceiling, floor, KEEP_DAYS_S])
        return Grant(bool(granted), int(total), None if int(zoho) < 0 else int(zoho))

    def note_zoho(self, remaining: int, reset_s: float) -> None:
        """Zoho said ``remaining`` calls are left until its reset in ``reset_s`` seconds."""
        if reset_s > 0:
            self.client.set(self.remaining_key, max(0, remaining), px=int(reset_s * 1000))

    def _counts(self, day: dt.date) -> dict[str, int]:
        raw = self.client.hgetall(self.key(day))
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    def _expected_scheduled(self, day: dt.date) -> int:
        """Scheduled calls a whole day is expected to need: yesterday's (with a margin), or half the budget
        when there is no yesterday."""
        yesterday = self._counts(day - dt.timedelta(days=1))
        return round(yesterday.get("scheduled", 0) * RESERVE_MARGIN) if yesterday else self.daily_budget // 2

    def _reserve(self, day: dt.date) -> int:
        """Scheduled calls still expected today: a day's expectation less what scheduled work spent today."""
        return max(0, self._expected_scheduled(day) - self._counts(day).get("scheduled", 0))

    def backfill_per_day(self) -> int:
        """What the backfill may spend in a whole day, at today's expectation of scheduled calls."""
        return max(0, self.daily_budget - self._expected_scheduled(self.day()))

    def state(self) -> BudgetState:
        day = self.day()
        counts = self._counts(day)
        used = counts.get("total", 0)
        zoho = self.client.get(self.remaining_key)
        zoho_remaining = int(zoho) if zoho is not None else None
        remaining = max(0, self.daily_budget - used)
        if zoho_remaining is not None:
            remaining = min(remaining, max(0, zoho_remaining))
        reserve = self._reserve(day)
        backfill_left = max(0, min(self.daily_budget - reserve - used,
                                   (zoho_remaining - reserve) if zoho_remaining is not None else 1 << 62))
        resets = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.tz)
        return BudgetState(day.isoformat(), self.daily_budget, used,
                           {p: counts.get(p, 0) for p in PURPOSES}, zoho_remaining, remaining, reserve,
                           backfill_left, resets.isoformat())
