"""`tds migrate`: idempotent, complete, and clear when the database is unreachable."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from support import ROOT, TDS, free_port

from tds_daemon import entities
from tds_daemon.store import migrate, revisions, schema


@contextmanager
def empty_database(migrated, suffix: str) -> Iterator[str]:
    """The URL of a new, empty database beside the test database (named with ``suffix``), dropped afterwards."""
    server, own = migrated["TDS_DATABASE_URL"].rsplit("/", 1)
    admin = create_engine(server + "/postgres", isolation_level="AUTOCOMMIT")
    name = own + suffix
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def test_migrate_is_idempotent(migrated):
    again = subprocess.run([*TDS, "migrate"], env=migrated, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "already at" in again.stdout


def test_the_revisions_read_without_alembic_are_alembics(engine):
    """What every command checks at start (revisions) is what Alembic itself reads, scripts and database."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._alembic_config())
    assert revisions.head() == script.get_current_head()
    assert revisions.parents() == {r.revision: r.down_revision for r in script.walk_revisions()}
    with engine.connect() as conn:
        at = MigrationContext.configure(conn, opts={"version_table": revisions.VERSION_TABLE}).get_current_revision()
        assert revisions.current(conn) == at == revisions.head()
    assert revisions.known(None) and revisions.known("0001") and not revisions.known("9999")


def test_migrated_database_matches_the_schema_and_the_registry(engine):
    insp = inspect(engine)
    assert set(insp.get_table_names(schema="zoho")) == {e.table for e in entities.ENTITIES} | {"item_images"}
    assert {"tds_inbox_events", "tds_sync_queue"} <= set(insp.get_table_names())
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        diff = compare_metadata(ctx, schema.metadata)
        for md in (schema.entity_metadata("zoho"),):
            ctx = MigrationContext.configure(conn, opts={"include_schemas": True,
                                                         "include_name": lambda n, t, p: t != "schema" or n == "zoho"})
            diff += compare_metadata(ctx, md)
    # Only differences that are not differences: the version table is Alembic's own.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "tds_alembic_version")]
    assert diff == [], f"a migration is missing for: {diff}"


def test_migrate_refuses_clearly_when_the_database_is_unreachable(migrated):
    env = {**migrated, "TDS_DATABASE_URL": f"postgresql+psycopg2://127.0.0.1:{free_port()}/nowhere"}
    r = subprocess.run([*TDS, "migrate"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("tds: cannot connect to PostgreSQL") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_run_refuses_an_unmigrated_database(migrated, tmp_path):
    with empty_database(migrated, "_empty") as url:
        env = {**migrated, "TDS_DATABASE_URL": url}
        r = subprocess.run([*TDS, "run"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 1
        assert "run `tds migrate`" in r.stderr and "Traceback" not in r.stderr


def test_a_schema_newer_than_this_tds_is_refused_in_one_line(migrated):
    with empty_database(migrated, "_newer") as url:
        db = create_engine(url)
        try:
            # What a newer TDS leaves behind before a rollback: a revision this code does not have.
            with db.begin() as c:
                c.execute(text("CREATE TABLE tds_alembic_version (version_num varchar(32) PRIMARY KEY)"))
                c.execute(text("INSERT INTO tds_alembic_version VALUES ('9999')"))
        finally:
            db.dispose()
        env = {**migrated, "TDS_DATABASE_URL": url}
        for command in ("migrate", "run"):
            r = subprocess.run([*TDS, command], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert r.returncode == 1, (command, r.stderr)
            assert "newer than this TDS" in r.stderr and "Traceback" not in r.stderr, (command, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1, (command, r.stderr)


def test_rows_stored_before_detail_tracking_are_classified_by_what_they_hold(migrated):
    """0008 on a database of 0007: a row holding line items is whole, a list row waits for its detail."""
    with empty_database(migrated, "_0007") as url:
        db = create_engine(url)
        env = {**migrated, "TDS_DATABASE_URL": url}
        try:
            subprocess.run([*TDS, "migrate"], env=env, check=True, cwd=ROOT, capture_output=True, timeout=120)
            with db.begin() as c:  # back to what 0007 left: no detail columns, no sales returns
                c.execute(text("DROP TABLE zoho.sales_returns, zoho.item_images"))
                for spec in entities.ENTITIES:
                    if spec.name != "sales_return":
                        c.execute(text(f"ALTER TABLE zoho.{spec.table} DROP COLUMN detail_state, "
                                       "DROP COLUMN detail_fetched_for"))
                c.execute(text("UPDATE tds_alembic_version SET version_num = '0007'"))
                c.execute(text("INSERT INTO zoho.invoices (zoho_id, version_at, raw) VALUES "
                               "('1', now(), '{\"invoice_id\": \"1\", \"line_items\": []}'), "
                               "('2', now(), '{\"invoice_id\": \"2\"}')"))
                c.execute(text("INSERT INTO zoho.users (zoho_id, version_at, raw) "
                               "VALUES ('3', now(), '{\"user_id\": \"3\"}')"))
            r = subprocess.run([*TDS, "migrate"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
            assert r.returncode == 0, r.stderr
            with db.connect() as c:
                states = dict(c.execute(text("SELECT zoho_id, detail_state FROM zoho.invoices")).all())
                assert states == {"1": "current", "2": "missing"}
                assert c.execute(text("SELECT detail_state FROM zoho.users")).scalar_one() == "current"
                assert c.execute(text("SELECT count(*) FROM zoho.sales_returns")).scalar_one() == 0
        finally:
            db.dispose()
