"""What webhook intake did, per entity: deliveries stored in the last hour and day and how fast they
were applied (facts in PostgreSQL), and duplicates and refusals by reason (counted by the API
processes in their metrics, since they last started: a refused delivery stores nothing)."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from tds_daemon import entities

_RECEIVED = text("""
SELECT entity_type,
       count(*) FILTER (WHERE received_at > now() - interval '1 hour') AS last_hour,
       count(*) AS last_day
FROM tds_inbox_events WHERE received_at > now() - interval '24 hours' GROUP BY 1
""")
_LATENCY = text("""
SELECT q.entity_type,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM q.completed_at - e.received_at)) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM q.completed_at - e.received_at)) AS p99,
       count(*) AS n
FROM tds_sync_queue q JOIN tds_inbox_events e ON e.id = q.event_id
WHERE q.completed_at > now() - interval '1 hour' AND q.status = 'completed' GROUP BY 1
""")
STORED = ("accepted", "duplicate")


def intake_counts() -> dict[str, dict[str, int]]:
    """``tds_webhooks_received_total`` summed over the API processes: {entity: {outcome: n}}."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return {}
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for family in registry.collect():
        if family.name != "tds_webhooks_received":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                entity, outcome = sample.labels["entity"], sample.labels["outcome"]
                out[entity][outcome] = out[entity].get(outcome, 0) + int(sample.value)
    return out


def report(engine) -> dict[str, Any]:
    """Per entity: received_1h, received_24h, duplicates, refused {reason: n}, apply p50/p99 (seconds, last hour)."""
    with engine.connect() as conn:
        received = {r.entity_type: r for r in conn.execute(_RECEIVED)}
        latency = {r.entity_type: r for r in conn.execute(_LATENCY)}
    counts = intake_counts()
    rows: dict[str, dict[str, Any]] = {}
    names = [spec.name for spec in entities.ENTITIES] + (["unknown"] if "unknown" in counts else [])
    for name in names:
        r, lat, c = received.get(name), latency.get(name), counts.get(name, {})
        rows[name] = {
            "received_1h": r.last_hour if r else 0, "received_24h": r.last_day if r else 0,
            "duplicates": c.get("duplicate", 0),
            "refused": {k: v for k, v in sorted(c.items()) if k not in STORED and v},
            "apply_p50_s": round(lat.p50, 3) if lat else None, "apply_p99_s": round(lat.p99, 3) if lat else None,
            "applied_1h": lat.n if lat else 0,
        }
    refused: dict[str, int] = defaultdict(int)
    for row in rows.values():
        for reason, n in row["refused"].items():
            refused[reason] += n
    return {"entities": rows, "refused": dict(sorted(refused.items())),
            "received_1h": sum(r["received_1h"] for r in rows.values()),
            "received_24h": sum(r["received_24h"] for r in rows.values()),
            "counters_since": "the API processes' start (duplicates and refusals store nothing)"}
