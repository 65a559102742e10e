"""The test database as the tests look at it: emptied between tests, the sync queue counted."""

from __future__ import annotations

from sqlalchemy import text


def truncate(engine) -> None:
    from tds_daemon import entities

    tables = ", ".join(["tds_sync_queue", "tds_inbox_events", "tds_sync_runs", "tds_sync_cursors", "tds_alerts",
                        "tds_healer_runs", "tds_stats_runs"]
                       + [f"zoho.{e.table}" for e in entities.ENTITIES] + ["zoho.item_images"])
    with engine.begin() as c:
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


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
