"""The crontab strings of the scheduler's jobs, read the same way by ``check-config`` and the scheduler.

"off" (or "") disables a job; anything else is a five-field crontab expression (minute hour
day-of-month month day-of-week) in the scheduler's time zone, turned into an APScheduler CronTrigger.

Days of the week must be names (mon-fri, sun): APScheduler 3 numbers them from Monday (0 = mon)
where cron numbers them from Sunday (0 = sun), so "0 2 * * 0" would silently run on Mondays.
APScheduler is imported on first use: processes that never read a crontab do not load it.
"""

from __future__ import annotations

import datetime as dt
import re

OFF = ("off", "")
_DIGIT_OUTSIDE_STEP = re.compile(r"(?<![/\d])\d")


def is_off(expr: str) -> bool:
    return expr.strip().lower() in OFF


def trigger(expr: str, timezone):
    """The CronTrigger of ``expr`` (None when the job is off); ValueError says what is wrong."""
    from apscheduler.triggers.cron import CronTrigger

    if is_off(expr):
        return None
    fields = expr.split()
    if len(fields) == 5 and _DIGIT_OUTSIDE_STEP.search(fields[4]):
        raise ValueError("give days of the week by name (mon, tue, ... sun): APScheduler counts 0 as "
                         "Monday, cron as Sunday")
    return CronTrigger.from_crontab(expr, timezone=timezone)


def check(expr: str) -> str | None:
    """The reason ``expr`` is not a usable job schedule, or None."""
    try:
        t = trigger(expr, dt.UTC)
    except ValueError as e:
        return f'must be a crontab expression (minute hour day month weekday) or "off": {e}; got {expr!r}'
    if t is not None and t.get_next_fire_time(None, dt.datetime.now(dt.UTC)) is None:
        return f"never fires (no such date), got {expr!r}"
    return None
