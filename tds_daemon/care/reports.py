"""What every care run's stored report shares: its opening fields and how the latest are read back.

The healer and the stats collection each keep one row per run (``tds_healer_runs``,
``tds_stats_runs``) whose JSON report starts with the same four fields, so that the dashboard and
the API can show any run's when, how long and why the same way.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine


def report_head(origin: str, started: dt.datetime, clock: float) -> tuple[dt.datetime, dict[str, Any]]:
    """The run's finish time (now) and its report's opening fields: ``origin``, ``started_at``,
    ``finished_at`` and ``duration_s`` (from the monotonic ``clock`` read at the start)."""
    finished = dt.datetime.now(dt.UTC)
    return finished, {
        "origin": origin,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round(time.monotonic() - clock, 3),
    }


def latest(engine: Engine, runs: Table, limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` rows of a run table as their reports (with their ``id``), newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
    return [{"id": r.id, **r.report} for r in rows]
