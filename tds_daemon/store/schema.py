"""Database schema as SQLAlchemy Core metadata: bookkeeping tables and the entity tables.

Entity tables are derived from the registry and live in ``database.entity_schema`` (default
``zoho``), which is why they are built per schema name rather than declared once at import.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP

from tds_daemon import entities, zohovalues

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUSES = ("pending", "processing", "completed", "failed", "dead_letter")
OUTCOMES = ("created", "updated", "unchanged", "stale", "deleted")
TZ = TIMESTAMP(timezone=True)

metadata = MetaData(naming_convention=NAMING_CONVENTION)

inbox_events = Table(
    "tds_inbox_events", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity_type", Text, nullable=False),
    Column("zoho_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("zoho_last_modified", TZ),
    Column("payload", JSONB, nullable=False),
    Column("received_at", TZ, nullable=False, server_default=func.now()),
    CheckConstraint("event_type IN ('created', 'updated', 'deleted')", name="event_type"),
)
Index(None, inbox_events.c.received_at)
# The story of one object (``tds trace``): its deliveries, and through them its sync items. Inbox rows are
# written once and never updated, so this costs one index entry per delivery.
Index(None, inbox_events.c.zoho_id)

# A delivery refused as a duplicate of a stored event (same idempotency key): recorded, so that the story of
# an object shows every delivery. Deleted with its event.
inbox_duplicates = Table(
    "tds_inbox_duplicates", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", BigInteger, ForeignKey("tds_inbox_events.id", ondelete="CASCADE"), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("received_at", TZ, nullable=False, server_default=func.now()),
)
Index(None, inbox_duplicates.c.event_id)

sync_queue = Table(
    "tds_sync_queue", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", BigInteger, ForeignKey("tds_inbox_events.id"), nullable=False, unique=True),
    Column("entity_type", Text, nullable=False),
    Column("zoho_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    Column("outcome", Text),
    Column("error_code", Text),
    Column("error_message", Text),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
    Column("dispatched_at", TZ),
    Column("lease_until", TZ),
    Column("next_attempt_at", TZ),
    Column("completed_at", TZ),
    Column("first_failed_at", TZ),
    Column("last_failed_at", TZ),
    CheckConstraint("status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES)), name="status"),
    CheckConstraint("outcome IS NULL OR outcome IN ({})".format(", ".join(f"'{o}'" for o in OUTCOMES)),
                    name="outcome"),
)
# The sweeper's three questions, each answered from a small partial index.
Index("ix_tds_sync_queue_pending", sync_queue.c.dispatched_at, postgresql_where=text("status = 'pending'"))
Index("ix_tds_sync_queue_processing", sync_queue.c.lease_until, postgresql_where=text("status = 'processing'"))
Index("ix_tds_sync_queue_failed", sync_queue.c.next_attempt_at, postgresql_where=text("status = 'failed'"))
# Retention (the healer deletes completed items by age) and the 24 h success rate of monitoring/health.
Index("ix_tds_sync_queue_completed", sync_queue.c.completed_at, postgresql_where=text("status = 'completed'"))
# Counts by state for metrics and monitoring. (No index by object: no query of TDS needs one, and each
# claim and completion writes an entry into every full index; migration 0007 dropped it.)
Index(None, sync_queue.c.status, sync_queue.c.entity_type)

RUN_KINDS = ("full", "incremental", "stock")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "skipped")

sync_runs = Table(
    "tds_sync_runs", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity_type", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("origin", Text, nullable=False, server_default="cli"),
    Column("since", TZ),
    Column("requested_at", TZ, nullable=False, server_default=func.now()),
    Column("dispatched_at", TZ),
    Column("started_at", TZ),
    Column("finished_at", TZ),
    # Written while the run makes progress: a 'running' run whose heartbeat stops was abandoned
    # (its worker was killed) and is failed by the recovery sweep.
    Column("heartbeat_at", TZ),
    Column("pages", Integer, nullable=False, server_default="0"),
    Column("objects", Integer, nullable=False, server_default="0"),
    Column("created", Integer, nullable=False, server_default="0"),
    Column("updated", Integer, nullable=False, server_default="0"),
    Column("unchanged", Integer, nullable=False, server_default="0"),
    Column("stale", Integer, nullable=False, server_default="0"),
    Column("deleted", Integer, nullable=False, server_default="0"),
    Column("requests", Integer, nullable=False, server_default="0"),
    Column("duration_s", Numeric(12, 3)),
    Column("error", Text),
    # A run of chosen items only (a stock refresh of some items): their ids, and what became of each
    # ({id: {"outcome": ..., ...}}, tds_daemon.pull.stockitems). NULL for a run of the whole entity.
    Column("item_ids", ARRAY(Text)),
    Column("item_results", JSONB),
    CheckConstraint("kind IN ({})".format(", ".join(f"'{k}'" for k in RUN_KINDS)), name="kind"),
    CheckConstraint("status IN ({})".format(", ".join(f"'{k}'" for k in RUN_STATUSES)), name="status"),
)
Index(None, sync_runs.c.entity_type, sync_runs.c.requested_at)
Index(None, sync_runs.c.requested_at)
Index("ix_tds_sync_runs_queued", sync_runs.c.dispatched_at, postgresql_where=text("status = 'queued'"))

sync_cursors = Table(
    "tds_sync_cursors", metadata,
    Column("entity_type", Text, primary_key=True),
    # The newest Zoho last-modified time applied by a pull: the next incremental starts just before it.
    Column("last_modified", TZ),
    Column("last_full_at", TZ),
    Column("last_incremental_at", TZ),
    Column("updated_at", TZ, nullable=False, server_default=func.now()),
)

SEVERITIES = ("info", "warning", "critical")

alerts = Table(
    "tds_alerts", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("type", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("entity", Text),
    Column("message", Text, nullable=False),
    Column("details", JSONB),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("first_seen_at", TZ, nullable=False, server_default=func.now()),
    Column("last_seen_at", TZ, nullable=False, server_default=func.now()),
    Column("acknowledged_at", TZ),
    Column("resolved_at", TZ),
    CheckConstraint("severity IN ({})".format(", ".join(f"'{s}'" for s in SEVERITIES)), name="severity"),
)
# One open alert per condition (type and entity): raising it again counts, it does not add a row.
Index("uq_tds_alerts_open", alerts.c.type, func.coalesce(alerts.c.entity, ""), unique=True,
      postgresql_where=text("resolved_at IS NULL"))
Index(None, alerts.c.last_seen_at)

# The dashboard's login sessions (tds_daemon.api.session): a session is live while its row is not ended.
dashboard_sessions = Table(
    "tds_dashboard_sessions", metadata,
    Column("id", Text, primary_key=True),  # SHA-256 of the cookie's nonce, never the nonce itself
    Column("created_at", TZ, nullable=False, server_default=func.now()),
    Column("expires_at", TZ, nullable=False),
    Column("ended_at", TZ),
    Column("client", Text),
)

RUN_ORIGINS = ("scheduler", "api", "cli")

# One row per healer run; the report is what the run returned (see tds_daemon.care.healing).
healer_runs = Table(
    "tds_healer_runs", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("origin", Text, nullable=False),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ, nullable=False),
    Column("report", JSONB, nullable=False),
    CheckConstraint("origin IN ({})".format(", ".join(f"'{o}'" for o in RUN_ORIGINS)), name="origin"),
)
Index(None, healer_runs.c.started_at)

# One row per stats run: the overall match and, in the report, each entity's counts (tds_daemon.care.stats).
stats_runs = Table(
    "tds_stats_runs", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("origin", Text, nullable=False),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ, nullable=False),
    Column("overall_match", Numeric(6, 2)),  # NULL when no entity could be compared
    Column("report", JSONB, nullable=False),
    CheckConstraint("origin IN ({})".format(", ".join(f"'{o}'" for o in RUN_ORIGINS)), name="origin"),
)
Index(None, stats_runs.c.started_at)

# Zoho calls TDS made each day (``scheduler.timezone``), per purpose (tds_daemon.pull.zoho.budget): the count
# a Redis restart or flush cannot reset.
zoho_calls = Table(
    "tds_zoho_calls", metadata,
    Column("day", Date, primary_key=True),
    Column("purpose", Text, primary_key=True),
    Column("calls", BigInteger, nullable=False),
)

# Zoho refused a call because the organization's daily quota is spent (code 45): no background call until
# ``until``, Zoho's reset.
zoho_quota_stops = Table(
    "tds_zoho_quota_stops", metadata,
    Column("until", TZ, primary_key=True),
    Column("recorded_at", TZ, nullable=False, server_default=func.now()),
)

DETAIL_STATES = ("current", "stale", "missing")

_SQL_TYPES = {"text": Text, "numeric": lambda: Numeric(zohovalues.NUMERIC_PRECISION, zohovalues.NUMERIC_SCALE),
              "date": Date, "timestamptz": lambda: TZ,
              "boolean": Boolean}


def item_images_columns() -> list[Column]:
    """One row per item that has (or had) an image: where its bytes are, or why they could not be stored."""
    return [
        Column("zoho_id", Text, primary_key=True),  # the item's
        Column("image_document_id", Text, nullable=False),  # Zoho's id of the image (a new image, a new id)
        Column("sha256", Text),  # hex of the bytes; the file's name; NULL while it could not be stored
        Column("content_type", Text),
        Column("bytes", Integer),
        Column("path", Text),  # relative to images.dir
        Column("synced_at", TZ, nullable=False, server_default=func.now()),
        Column("deleted_at", TZ),  # the item lost its image (or the item is gone)
        Column("error", Text),  # why this image id could not be stored (not tried again until the id changes)
    ]


def entity_columns(spec: entities.EntitySpec) -> list[Column]:
    """The columns of one entity table: fixed bookkeeping columns, then the spec's typed columns."""
    return [
        Column("zoho_id", Text, primary_key=True),
        Column("zoho_last_modified", TZ),
        # What "newer" means for this row: Zoho's last-modified time, or the arrival time where the
        # entity has none (price lists, users, branches).
        Column("version_at", TZ, nullable=False),
        Column("raw", JSONB, nullable=False),
        Column("synced_at", TZ, nullable=False, server_default=func.now()),
        Column("deleted_at", TZ),
        # Whether ``raw`` is the whole object of this version: 'current'; 'stale' (a newer list row
        # updated the list fields, the rest is the previous whole object's); 'missing' (only ever seen in
        # a list). The detail backfill reads the whole object of every row not 'current'.
        Column("detail_state", Text, nullable=False, server_default="current"),
        # The version_at a detail read was last made for: the same version is never read twice.
        Column("detail_fetched_for", TZ),
        # The latest pull (tds_sync_runs.id) that wrote this row; a webhook or a detail read leaves it as it is.
        Column("last_pull_run_id", BigInteger),
        *(Column(c.name, _SQL_TYPES[c.type]()) for c in spec.columns),
    ]


@lru_cache(maxsize=8)
def entity_metadata(schema: str) -> MetaData:
    md = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    for spec in entities.ENTITIES:
        t = Table(spec.table, md, *entity_columns(spec), CheckConstraint(
            "detail_state IN ({})".format(", ".join(f"'{s}'" for s in DETAIL_STATES)), name="detail_state"))
        Index(None, t.c.zoho_last_modified)
        # The backfill's question, newest first, from a small partial index.
        Index(f"ix_{spec.table}_detail_wanted", t.c.version_at.desc(),
              postgresql_where=text("detail_state <> 'current' AND deleted_at IS NULL"))
    images = Table("item_images", md, *item_images_columns())
    Index(None, images.c.sha256)
    return md


def images_table(schema: str) -> Table:
    return entity_metadata(schema).tables[f"{schema}.item_images"]


def entity_table(spec: entities.EntitySpec, schema: str) -> Table:
    return entity_metadata(schema).tables[f"{schema}.{spec.table}"]

# The outbox (tds_daemon.apply.events): one row per change applied and per pull run ended, ids committed in
# increasing order; kept for ``events.retain_days``.
events = Table(
    "tds_events", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("type", Text, nullable=False),
    Column("entity", Text),
    Column("zoho_id", Text),
    Column("payload", JSONB, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)
Index(None, events.c.created_at)

# Pushing events to each configured subscriber (keyed by its URL): the last event id it has had (delivered,
# filtered out, or given up on), and the state of the delivery being retried.
event_subscribers = Table(
    "tds_event_subscribers", metadata,
    Column("url", Text, primary_key=True),
    Column("cursor", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("failing_since", TZ),
    Column("next_attempt_at", TZ),
    Column("last_error", Text),
    Column("delivered_at", TZ),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)

# Events a subscriber failed to take for three days: kept, and pushed again when an operator asks (replay).
event_dead_letters = Table(
    "tds_event_dead_letters", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", TZ, nullable=False),
    Column("failed_at", TZ, nullable=False, server_default=func.now()),
    Column("last_error", Text, nullable=False),
    Column("replay_requested_at", TZ),
)
Index(None, event_dead_letters.c.url, event_dead_letters.c.event_id, unique=True)
