"""Statistics: how closely the local copy matches Zoho, per entity and overall; repair where it drifts.

A stats run (daily, or ``POST /api/tds/stats/run``) pages through each entity's Zoho list (never a read
per object) and compares presence (every listed id against the live rows) and, for a seeded sample of
``stats.sample_size`` objects, the version and typed columns. Below ``stats.match_threshold`` an entity
gets a ``stats_mismatch`` alert and a full sync (none if one is already waiting); at or above, the alert
is resolved. Each run is stored in ``tds_stats_runs``. How ``match_pct`` is computed: docs/OPERATIONS.md,
"Day to day".
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from tds_daemon import entities, zohovalues
from tds_daemon.apply.broker import redis_client
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care import datachecks
from tds_daemon.care.reports import latest, report_head
from tds_daemon.config import Config
from tds_daemon.entities import EntitySpec
from tds_daemon.guard import alerts
from tds_daemon.oneline import described
from tds_daemon.pull import launch
from tds_daemon.pull.zoho import ZohoClient
from tds_daemon.store.schema import entity_table, stats_runs

log = logging.getLogger(__name__)

ALERT = "stats_mismatch"
EXAMPLES = 5  # mismatching ids shown per entity
_SCALE = Decimal("0.000001")


@dataclass
class EntityStats:
    entity: str
    zoho_count: int = 0
    local_count: int = 0
    present: int = 0  # Zoho's ids that have a live local row
    sampled: int = 0  # Zoho objects whose fields were compared
    sample_matched: int = 0
    matched: int = 0
    match_pct: float | None = None
    requests: int = 0
    repair_run_id: int | None = None
    repair: str | None = None
    error: str | None = None
    mismatches: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _same(kind: str, zoho_value: Any, local: Any) -> bool:
    if zoho_value is None or local is None:
        return zoho_value is None and local is None
    if kind == "numeric":  # the column keeps 6 decimal places
        return Decimal(zoho_value).quantize(_SCALE) == Decimal(local).quantize(_SCALE)
    return zoho_value == local


def compare_fields(spec: EntitySpec, obj: dict, row: Mapping[str, Any]) -> str | None:
    """Why the local row (a mapping of its columns) does not match Zoho's list object, or None when it does."""
    if spec.last_modified and spec.last_modified in obj:
        try:
            modified = zohovalues.parse_timestamp(obj.get(spec.last_modified))
        except zohovalues.InvalidValue:
            modified = None
        if modified is not None:
            local = row["zoho_last_modified"]
            if local is None or local < modified:
                return f"stale: local {spec.last_modified} older than Zoho's"
            if local > modified:
                return None  # newer here: a change reached us after Zoho's page was read
    for col in spec.columns:
        if col.field not in obj:
            continue  # not in the list answer: nothing to compare with
        try:
            value = zohovalues.convert(col.type, obj[col.field])
        except zohovalues.InvalidValue:
            continue
        if not _same(col.type, value, row[col.name]):
            return f"field {col.name} differs"
    return None


def compare_entity(spec: EntitySpec, client: ZohoClient, engine: Engine, schema: str, sample_size: int,
                   rng: random.Random) -> EntityStats:
    """Page through Zoho's list of ``spec`` and compare it with the local table. Raises ZohoError."""
    out = EntityStats(spec.name)
    requests_before = client.requests
    ids: set[str] = set()
    sample: list[dict] = []
    for page in client.iter_pages(spec, newest_first=False):
        for obj in page.objects:
            zoho_id = zohovalues.zoho_id(obj.get(spec.id_field))
            if zoho_id is None or zoho_id in ids:
                continue  # offset pages can repeat an object that moved while we paged
            ids.add(zoho_id)
            if len(sample) < sample_size:
                sample.append(obj)
            else:
                j = rng.randrange(len(ids))
                if j < sample_size:
                    sample[j] = obj
    out.requests = client.requests - requests_before
    out.zoho_count = len(ids)

    table = entity_table(spec, schema)
    with engine.connect() as conn:
        local_ids = set(conn.execute(select(table.c.zoho_id).where(table.c.deleted_at.is_(None))).scalars())
        sample_ids = [zohovalues.zoho_id(o.get(spec.id_field)) for o in sample]
        rows = {r["zoho_id"]: r for r in conn.execute(select(table).where(
            table.c.zoho_id.in_([i for i in sample_ids if i in local_ids]))).mappings()} if sample_ids else {}
    out.local_count = len(local_ids)
    out.present = len(ids & local_ids)
    missing_examples = sorted(ids - local_ids)[:EXAMPLES]
    out.mismatches = [{"zoho_id": i, "why": "missing locally"} for i in missing_examples]

    sampled_present = 0
    for obj, zoho_id in zip(sample, sample_ids, strict=True):
        out.sampled += 1
        row = rows.get(zoho_id)
        if row is None:
            continue  # missing: already counted by presence
        sampled_present += 1
        why = compare_fields(spec, obj, row)
        if why is None:
            out.sample_matched += 1
        elif len(out.mismatches) < 2 * EXAMPLES:
            out.mismatches.append({"zoho_id": zoho_id, "why": why})
    share = out.sample_matched / sampled_present if sampled_present else 1.0
    out.matched = round(out.present * share)
    denominator = max(out.zoho_count, out.local_count)
    out.match_pct = round(100.0 * out.matched / denominator, 2) if denominator else 100.0
    return out


def _act(engine: Engine, dispatcher: Dispatcher, config: Config, s: EntityStats, fired: dict[str, list]) -> None:
    """Alert and repair below the threshold; resolve at or above it."""
    threshold = config.stats.match_threshold
    if s.match_pct >= threshold:
        if alerts.resolve(engine, ALERT, entity=s.entity):
            fired["resolved"].append(s.entity)
        return
    started = launch.queue(engine, dispatcher, [s.entity], "full", "stats", unless_queued=True)
    if started:
        s.repair_run_id = started[0].id
        s.repair = "queued" if started[0].dispatched else "queued, not yet sent (broker unavailable)"
    else:
        s.repair = "a full sync of this entity was already queued"
    message = (f"{s.entity}: {s.match_pct}% of the local copy matches Zoho (threshold {threshold}%): Zoho has "
               f"{s.zoho_count}, TDS {s.local_count} live rows, {s.matched} matching; a full sync was queued "
               "to repair it")
    alert_id = alerts.raise_alert(engine, ALERT, "warning", message, entity=s.entity, details={
        "match_pct": s.match_pct, "zoho_count": s.zoho_count, "local_count": s.local_count,
        "matched": s.matched, "repair_run_id": s.repair_run_id})
    fired["raised"].append({"id": alert_id, "entity": s.entity, "match_pct": s.match_pct})


def run(config: Config, engine: Engine, dispatcher: Dispatcher, origin: str, names: list[str] | None = None,
        *, client: ZohoClient | None = None) -> dict[str, Any]:
    """One stats run over ``names`` (default every entity); returns the stored report (with its ``id``)."""
    specs = [entities.BY_NAME[n] for n in names] if names else list(entities.ENTITIES)
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    rng = random.Random(int(started.timestamp()))
    own_client = client is None
    client = client or ZohoClient(config, redis_client(config), engine=engine)
    results: dict[str, dict[str, Any]] = {}
    fired: dict[str, list] = {"raised": [], "resolved": []}
    matched_total = denominator_total = 0
    try:
        for spec in specs:
            try:
                s = compare_entity(spec, client, engine, config.database.entity_schema, config.stats.sample_size,
                                   rng)
            except Exception as e:  # reported with its error, not counted as 0 %
                log.warning("stats: %s not compared: %s: %s", spec.name, type(e).__name__, e)
                s = EntityStats(spec.name, error=described(e))
            else:
                _act(engine, dispatcher, config, s, fired)
                matched_total += s.matched
                denominator_total += max(s.zoho_count, s.local_count)
                log.info("stats: %s zoho=%d local=%d matched=%d sampled=%d match=%.2f%%", spec.name, s.zoho_count,
                         s.local_count, s.matched, s.sampled, s.match_pct)
            results[spec.name] = s.as_json()
    finally:
        if own_client:
            client.close()
    overall = None  # nothing compared
    if any(r["error"] is None for r in results.values()):
        overall = round(100.0 * matched_total / denominator_total, 2) if denominator_total else 100.0
    checks = datachecks.for_report(engine, config.database.entity_schema)  # the copy's consistency in itself
    finished, head = report_head(origin, started, clock)
    report = {
        **head,
        "threshold": config.stats.match_threshold,
        "overall_match": overall,
        "entities": results,
        "alerts": fired,
        "repairs": [{"entity": r["entity"], "run_id": r["repair_run_id"]} for r in results.values()
                    if r["repair_run_id"] is not None],
        "errors": {r["entity"]: r["error"] for r in results.values() if r["error"]},
        "data_checks": checks,
    }
    with engine.begin() as conn:
        run_id = conn.execute(insert(stats_runs).values(
            origin=origin, started_at=started, finished_at=finished, overall_match=overall, report=report,
        ).returning(stats_runs.c.id)).scalar_one()
    log.info("stats run %s (%s): overall match %s%%, %d repair(s), %d error(s)", run_id, origin, overall,
             len(report["repairs"]), len(report["errors"]))
    return {"id": run_id, **report}


def history(engine: Engine, limit: int = 30) -> list[dict[str, Any]]:
    """The latest stats runs, newest first: full reports."""
    return latest(engine, stats_runs, limit)
