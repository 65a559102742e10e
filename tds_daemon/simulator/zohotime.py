"""Zoho's timestamps: ``2025-11-13T08:40:00+0300`` (seconds, offset without a colon).

The simulated organization lives at UTC+03:00 (Riyadh). Generated data ends at ``DATA_END`` so that
the same seed gives the same objects on any day; changes made at run time carry the wall clock.
"""

from __future__ import annotations

import datetime as dt

from tds_daemon.zohovalues import InvalidValue, parse_timestamp

ORG_TZ = dt.timezone(dt.timedelta(hours=3))
DATA_END = dt.datetime(2025, 11, 13, 8, 40, tzinfo=ORG_TZ)


def fmt(moment: dt.datetime) -> str:
    return moment.astimezone(ORG_TZ).strftime("%Y-%m-%dT%H:%M:%S%z")


def from_epoch(seconds: float) -> str:
    return fmt(dt.datetime.fromtimestamp(int(seconds), ORG_TZ))


def now_epoch() -> int:
    return int(dt.datetime.now(ORG_TZ).timestamp())


def epoch(value: str) -> float:
    parsed = parse_timestamp(value)
    if parsed is None:
        raise InvalidValue("empty timestamp")
    return parsed.timestamp()


def parse_param(value: str) -> float:
    """A ``last_modified_time`` query value → epoch seconds. Lenient: a ``+`` the client forgot to
    encode arrives as a space; ``+03:00``, ``Z`` and a bare date (midnight, org time) are accepted."""
    text = value.strip()
    if len(text) == 10:
        return dt.datetime.fromisoformat(text).replace(tzinfo=ORG_TZ).timestamp()
    if len(text) > 19 and text[19] == " ":
        text = text[:19] + "+" + text[20:]
    return epoch(text)
