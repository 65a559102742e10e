"""The test database as the tests look at it: emptied between tests, the sync queue counted."""

from __future__ import annotations

from sqlalchemy import exc, text


def truncate(engine) -> None:
    """Every table of TDS's as after migrating, its ids starting at 1 again. Only the tables that hold rows
    are truncated: a TRUNCATE makes new files for the table and its indexes, even when it is empty."""
    from tds_daemon import entities

    tables = ["tds_sync_queue", "tds_inbox_events", "tds_inbox_duplicates", "tds_sync_runs", "tds_sync_cursors",
              "tds_alerts", "tds_healer_runs", "tds_stats_runs", "tds_events", "tds_event_subscribers",
              "tds_event_dead_letters", "tds_zoho_calls", "tds_zoho_quota_stops"] \
        + [f"zoho.{e.table}" for e in entities.ENTITIES] + ["zoho.item_images"]
    filled = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})" for t in tables)
    # A module's daemon may still be writing (a backfill, a sweep): PostgreSQL may pick this as a deadlock's
    # victim, and then it is simply tried again.
    for attempt in range(5):
        try:
            with engine.begin() as c:
                c.execute(text("SET LOCAL lock_timeout = '10s'"))
                c.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
                names = c.execute(text(filled)).scalars().all()
                if names:
                    c.execute(text(f"TRUNCATE {', '.join(names)} CASCADE"))
                # Ids from 1 again, as TRUNCATE ... RESTART IDENTITY would, for every table (an emptied
                # one may have used some): setval writes no new file.
                c.execute(text("SELECT setval(s.oid, 1, false) FROM pg_class s JOIN pg_depend d "
                               "ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.deptype IN ('a', 'i') "
                               "WHERE s.relkind = 'S' AND d.refobjid = ANY(CAST(:tables AS regclass[]))"),
                          {"tables": tables})
            return
        except exc.OperationalError as e:
            if attempt == 4 or getattr(e.orig, "pgcode", None) not in ("40P01", "55P03"):
                raise


def queue_counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT status, count(*) FROM tds_sync_queue GROUP BY 1")).all())


def applies_blocked(engine) -> int:
    """Worker transactions of this database waiting for a row lock: an apply in flight, held by a test.
    (A fresh item stays 'pending' while its transaction runs, so the queue's states cannot tell.)"""
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND application_name = 'tds-worker' AND wait_event_type = 'Lock'")).scalar_one()


def all_applied(engine, expected: int) -> bool:
    counts = queue_counts(engine)
    return counts.get("completed", 0) == expected and sum(counts.values()) == expected


class Sql(str):
    """A SQL expression written into the INSERT, not a bound value."""


NOW = Sql("now()")


def add_items(engine, status: str, n: int = 1, entity: str = "product", **extra) -> list[int]:
    """n sync items in ``status``, each with its inbox event; failures and completions get their times."""
    if status in ("failed", "dead_letter"):
        extra = {"error_code": "invalid_field", "error_message": "rate: not a number", "attempt_count": 1,
                 "first_failed_at": NOW, "last_failed_at": NOW, **extra}
    if status == "completed":
        extra = {"completed_at": NOW, "outcome": "created", **extra}
    cols = ", ".join(["event_id", "entity_type", "zoho_id", "status", *extra])
    values = ", ".join([":event_id", ":entity", ":zoho_id", ":status",
                        *(v if isinstance(v, Sql) else f":{k}" for k, v in extra.items())])
    params = {k: v for k, v in extra.items() if not isinstance(v, Sql)}
    ids = []
    with engine.begin() as c:
        for _ in range(n):
            event_id = c.execute(text(
                "INSERT INTO tds_inbox_events (entity_type, zoho_id, event_type, idempotency_key, payload) "
                "VALUES (:e, 'x', 'updated', gen_random_uuid()::text, '{}') RETURNING id"), {"e": entity}).scalar_one()
            zoho_id = str(4816000000000000000 + event_id)
            ids.append(c.execute(text(f"INSERT INTO tds_sync_queue ({cols}) VALUES ({values}) RETURNING id"),
                                 {"event_id": event_id, "entity": entity, "zoho_id": zoho_id, "status": status,
                                  **params}).scalar_one())
    return ids
