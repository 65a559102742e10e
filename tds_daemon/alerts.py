"""Alerts in ``tds_alerts``: raised while a condition holds, resolved when it clears.

The same open condition (type and entity) is one row: raising it again bumps ``count`` and
``last_seen_at`` and takes the new severity and message; resolving it stamps ``resolved_at``, and the
next occurrence opens a new row. Whoever detects a condition raises it, and whoever sees it clear
resolves it; nothing else deletes alerts.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from .schema import SEVERITIES, alerts

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


def _begin(db: Engine | Connection):
    return db.begin() if isinstance(db, Engine) else db.begin_nested()
