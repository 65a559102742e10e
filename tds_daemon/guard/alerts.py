"""Alerts in ``tds_alerts``: raised while a condition holds, resolved when it clears.

The same open condition (type and entity) is one row: raising it again bumps ``count`` and
``last_seen_at`` and takes the new severity and message; resolving it stamps ``resolved_at``, and the
next occurrence opens a new row. Whoever detects a condition raises it, and whoever sees it clear
resolves it; nothing else deletes alerts.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from tds_daemon.store.schema import SEVERITIES, alerts

log = logging.getLogger(__name__)


def raise_alert(db: Engine | Connection, type_: str, severity: str, message: str, *, entity: str | None = None,
                details: dict[str, Any] | None = None) -> int:
    """Open the alert, or count another occurrence of the open one; returns its id."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    stmt = insert(alerts).values(type=type_, severity=severity, entity=entity, message=message, details=details)
    stmt = stmt.on_conflict_do_update(
        index_elements=[alerts.c.type, func.coalesce(alerts.c.entity, "")],
        index_where=text("resolved_at IS NULL"),
        set_={"severity": stmt.excluded.severity, "message": stmt.excluded.message,
              "details": stmt.excluded.details, "count": alerts.c.count + 1, "last_seen_at": func.now()},
    ).returning(alerts.c.id, alerts.c.count)
    with _begin(db) as conn:
        alert_id, count = conn.execute(stmt).one()
    if count == 1:
        log.warning("alert raised: type=%s severity=%s entity=%s id=%s: %s", type_, severity, entity, alert_id, message)
    return alert_id


def resolve(db: Engine | Connection, type_: str, *, entity: str | None = None) -> bool:
    """Close the open alert of this condition, if there is one."""
    stmt = (update(alerts)
            .where(alerts.c.type == type_, func.coalesce(alerts.c.entity, "") == (entity or ""),
                   alerts.c.resolved_at.is_(None))
            .values(resolved_at=func.now())
            .returning(alerts.c.id))
    with _begin(db) as conn:
        closed = conn.execute(stmt).scalars().all()
    for alert_id in closed:
        log.info("alert resolved: type=%s entity=%s id=%s", type_, entity, alert_id)
    return bool(closed)


ALERT_STATUSES = ("open", "resolved", "all")


def as_json(row) -> dict[str, Any]:
    """An alert as the API and ``tds status`` show it: times as ISO 8601 strings."""
    out = {k: row[k] for k in ("id", "type", "severity", "entity", "message", "details", "count")}
    for k in ("first_seen_at", "last_seen_at", "acknowledged_at", "resolved_at"):
        out[k] = row[k].isoformat() if row[k] else None
    return out


def recent(db: Engine | Connection, *, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
    """Alerts in ``status`` (open, resolved or all), the most recently seen first."""
    if status not in ALERT_STATUSES:
        raise ValueError(f"status must be one of {ALERT_STATUSES}, got {status!r}")
    q = select(alerts).order_by(alerts.c.last_seen_at.desc(), alerts.c.id.desc()).limit(limit)
    if status == "open":
        q = q.where(alerts.c.resolved_at.is_(None))
    elif status == "resolved":
        q = q.where(alerts.c.resolved_at.isnot(None))
    with _connect(db) as conn:
        return [as_json(r._mapping) for r in conn.execute(q)]


def open_counts(db: Engine | Connection) -> dict[str, int]:
    """Open alerts: ``{"open": n, "critical": n, "warning": n, "info": n}``."""
    q = select(alerts.c.severity, func.count()).where(alerts.c.resolved_at.is_(None)).group_by(alerts.c.severity)
    with _connect(db) as conn:
        by_severity = dict(conn.execute(q).all())
    return {"open": sum(by_severity.values()), **{s: by_severity.get(s, 0) for s in reversed(SEVERITIES)}}


def acknowledge(db: Engine | Connection, alert_id: int) -> dict[str, Any] | None:
    """Stamp ``acknowledged_at`` (the first time only: acknowledging again changes nothing).

    Returns the alert, or None if there is no alert with this id. Acknowledging says a person has
    seen it; it does not resolve it: the alert stays open until its condition clears.
    """
    stmt = (update(alerts).where(alerts.c.id == alert_id)
            .values(acknowledged_at=func.coalesce(alerts.c.acknowledged_at, func.now()))
            .returning(*alerts.c))
    with _begin(db) as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    log.info("alert acknowledged: type=%s entity=%s id=%s", row.type, row.entity, row.id)
    return as_json(row._mapping)


def _connect(db: Engine | Connection):
    return db.connect() if isinstance(db, Engine) else nullcontext(db)


def _begin(db: Engine | Connection):
    return db.begin() if isinstance(db, Engine) else db.begin_nested()
