"""Data checks: whether TDS's copy is consistent in itself (the stats run compares it with Zoho instead).

Three checks, each a set of rules (``tds_daemon.care.checkrules``): ``orphans`` (rows naming a customer, vendor,
item, invoice or sales order TDS does not hold, or holds only as deleted), ``products`` (shared SKUs, missing name
or SKU, negative rates, stock that disagrees with the per-warehouse stock) and ``integrity`` (typed columns that
disagree with ``raw``, totals that disagree with their lines, last-modified times in the future, text Zoho sent
that could only be stored replaced). Only live rows (``deleted_at IS NULL``) are checked.

A check runs on demand (``GET /api/tds/data-validation/{check}``) and as part of every stats run, whose stored
report keeps the counts that ``/metrics`` and the dashboard show. Each rule returns at most ``limit`` findings and
its total count; a check runs in one read-only snapshot under a statement timeout.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.care.checkrules import CHECKS, rules
from tds_daemon.oneline import described

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EXAMPLES = 5  # findings per check kept in a stats run's report
STATEMENT_TIMEOUT = "120s"


class UnknownCheck(KeyError):
    """A check name that is not one of CHECKS."""


def run(engine: Engine, schema: str, check: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """Run one check; its findings (at most ``limit`` per rule and in all) and their counts by entity and rule.
    Raises UnknownCheck for a name not in CHECKS."""
    if check not in CHECKS:
        raise UnknownCheck(check)
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    findings: list[dict[str, Any]] = []
    counts = {e.name: 0 for e in entities.ENTITIES}
    by_rule: dict[str, int] = {}
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"))
        for rule in rules(schema)[check]:
            rows = conn.execute(rule.sql, {"limit": limit}).mappings().all()
            total = rows[0]["total"] if rows else 0
            by_rule[rule.key] = total
            counts[rule.entity] += total
            findings.extend({"rule": rule.name, "entity": rule.entity, "zoho_id": r["zoho_id"], "label": r["label"],
                             "problem": rule.describe(r)} for r in rows)
    total = sum(by_rule.values())
    log.info("data check %s: %d finding(s) in %.2fs", check, total, time.monotonic() - clock)
    return {"check": check, "checked_at": started.isoformat(), "duration_s": round(time.monotonic() - clock, 3),
            "limit": limit, "total": total, "counts": {k: v for k, v in counts.items() if v},
            "rules": {k: v for k, v in by_rule.items() if v}, "truncated": total > min(len(findings), limit),
            "findings": findings[:limit]}


def for_report(engine: Engine, schema: str) -> dict[str, Any]:
    """Every check, summed up for a stats run's report: counts and the first few findings of each, or the
    error that stopped one (a failing check never fails the stats run)."""
    out: dict[str, Any] = {}
    for check in CHECKS:
        try:
            out[check] = run(engine, schema, check, EXAMPLES)
        except Exception as e:
            log.warning("data check %s failed: %s: %s", check, type(e).__name__, e)
            out[check] = {"check": check, "error": described(e)}
    return out
