"""The settings schema: every setting TDS reads, its type, default, meaning and check.

This is the single description of the configuration: ``tds_daemon.config`` loads and validates
against it, and the ``check-config`` report, the README's reference table and
ops/tds.example.toml are generated from it.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tds_daemon import crontab, subscribers
from tds_daemon.redaction import mask_url, split_url

ENV_PREFIX = "TDS_"
REGIONS = ("com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa")


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    kind: type
    default: Any
    doc: str
    secret: bool = False
    check: Callable[[Any], str | list[str] | None] | None = None  # the reason(s) it is bad, or None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper()


def _range(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}, got {v}"


def _url(*schemes: str) -> Callable[[Any], str | None]:
    def check(v: str) -> str | None:
        parts = split_url(v)
        if parts is None or parts.scheme not in schemes:
            return f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}, got {mask_url(v)!r}"
        if not parts.host and parts.scheme not in ("postgresql", "postgresql+psycopg2"):
            return f"must name a host, got {mask_url(v)!r}"
        return None

    return check


def _bind(v: str) -> str | None:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"must be HOST:PORT with a port from 1 to 65535, got {v!r}"
    return None


def _identifier(v: str) -> str | None:
    if not v.replace("_", "").isalnum() or not v[:1].isalpha() or v.lower() != v:
        return f"must be a lower-case SQL identifier, got {v!r}"
    return None


def _optional_url(v: str) -> str | None:
    return None if v == "" else _url("https", "http")(v)


def _secret(min_len: int) -> Callable[[Any], str | None]:
    return lambda v: None if v == "" or len(v) >= min_len else f"must be at least {min_len} characters"


def _choice(*values: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else f"must be one of {', '.join(values)}, got {v!r}"


def _abs_path(v: str) -> str | None:
    return None if v.startswith("/") else f"must be an absolute path, got {v!r}"


def _timezone(v: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"must be an IANA time zone such as UTC or Europe/Berlin, got {v!r}"
    return None


SCHEMA: tuple[Setting, ...] = (
    Setting("database", "url", str, "postgresql+psycopg2://localhost/tds",
            "SQLAlchemy URL of the PostgreSQL database", check=_url("postgresql", "postgresql+psycopg2")),
    Setting("database", "entity_schema", str, "zoho", "schema holding the entity tables", check=_identifier),
    Setting("database", "statement_timeout_ms", int, 15000,
            "server-side limit on any one SQL statement", check=_range(100, 600000)),
    Setting("database", "connect_timeout_s", int, 5, "TCP connect timeout to PostgreSQL", check=_range(1, 60)),
    Setting("redis", "url", str, "redis://127.0.0.1:6379/0", "Redis URL of the Dramatiq broker",
            check=_url("redis", "rediss", "unix")),
    Setting("redis", "namespace", str, "tds", "prefix of every Redis key TDS uses (lets two installations "
            "share one Redis)", check=_identifier),
    Setting("redis", "socket_timeout_s", float, 5.0, "Redis socket connect/read timeout",
            check=_range(0.1, 60)),
    Setting("api", "bind", str, "127.0.0.1:8080", "HOST:PORT the API listens on", check=_bind),
    Setting("api", "webhook_token", str, "", "shared token Zoho sends with each webhook; "
            "webhooks are refused until set", secret=True, check=_secret(8)),
    Setting("api", "webhook_secret", str, "", "when set, X-Zoho-Webhook-Signature (hex HMAC-SHA256 of "
            "the body) is required", secret=True, check=_secret(12)),
    Setting("api", "admin_token", str, "", "bearer token of the admin API; refused until set",
            secret=True, check=_secret(8)),
    Setting("api", "session_hours", int, 12, "how long a dashboard login lasts; changing api.admin_token "
            "ends every session", check=_range(1, 720)),
    Setting("api", "max_body_bytes", int, 1048576, "largest webhook body accepted",
            check=_range(1024, 64 * 1048576)),
    Setting("api", "processes", int, 2, "gunicorn worker processes", check=_range(1, 64)),
    Setting("api", "threads", int, 8, "threads per gunicorn worker process; webhooks that arrive together "
            "are stored in one transaction", check=_range(1, 256)),
    Setting("api", "send_interval_ms", int, 20, "after sending new items to the workers, how long each API "
            "process gathers the next ones: longer means fewer, bigger batches (less CPU), shorter means less "
            "latency", check=_range(0, 1000)),
    Setting("api", "timeout_s", int, 30, "gunicorn request timeout", check=_range(5, 600)),
    Setting("workers", "processes", int, 2, "Dramatiq worker processes", check=_range(1, 64)),
    Setting("workers", "threads", int, 8, "threads per worker process", check=_range(1, 256)),
    Setting("workers", "nice", int, 10, "CPU priority the worker processes give up to the API (a nice "
            "increment): when the CPU is short, accepting webhooks comes first (Zoho does not send a missed "
            "one again) and applying catches up after", check=_range(0, 19)),
    Setting("workers", "intake_first_s", float, 30.0, "while the API is saturated, how long at most the "
            "workers hold back newly received items so that taking webhooks comes first (0: never; at most "
            "half of workers.redispatch_after_s is used)", check=_range(0, 600)),
    Setting("workers", "max_attempts", int, 10,
            "attempts for a transient failure before the item goes to dead_letter", check=_range(1, 100)),
    Setting("workers", "min_backoff_ms", int, 500, "first retry delay", check=_range(10, 600000)),
    Setting("workers", "max_backoff_ms", int, 60000, "longest retry delay", check=_range(100, 3600000)),
    Setting("workers", "lease_s", int, 60, "how long an item may stay in processing before it is "
            "presumed lost and dispatched again", check=_range(5, 3600)),
    Setting("workers", "redispatch_after_s", int, 60, "a pending item with no progress this long is "
            "dispatched again (lost message)", check=_range(5, 3600)),
    Setting("workers", "sweep_interval_s", float, 2.0, "how often each worker looks for lost items",
            check=_range(0.2, 300)),
    Setting("monitoring", "pending_warning", int, 1000, "more pending sync items than this: monitoring "
            "status warning (and the healer's queue-depth alert)", check=_range(0, 100_000_000)),
    Setting("monitoring", "pending_critical", int, 5000, "more pending sync items than this: critical",
            check=_range(1, 100_000_000)),
    Setting("monitoring", "dead_letter_warning", int, 50, "more dead letters than this: monitoring status "
            "warning (and the healer's dead-letter alert)", check=_range(0, 100_000_000)),
    Setting("monitoring", "dead_letter_critical", int, 100, "more dead letters than this: critical",
            check=_range(1, 100_000_000)),
    Setting("monitoring", "success_rate_min_items", int, 20, "items finished in the last 24 hours before their "
            "success rate can make the monitoring status degraded (fewer say too little)", check=_range(1, 1_000_000)),
    Setting("supervisor", "max_restarts", int, 5, "restarts of one child allowed within "
            "supervisor.restart_window_s; one more and tds run stops everything and exits non-zero",
            check=_range(1, 1000)),
    Setting("supervisor", "restart_window_s", int, 60, "the window of supervisor.max_restarts",
            check=_range(1, 86400)),
    Setting("supervisor", "drain_timeout_s", int, 30, "on stop or reload, how long in-flight requests and "
            "messages may take to finish before their process is killed", check=_range(1, 3600)),
    Setting("healer", "dead_letter_retry_after_s", int, 86400, "the healer retries a dead letter whose last "
            "failure is older than this", check=_range(0, 365 * 86400)),
    Setting("healer", "max_attempts_total", int, 10, "a dead letter that has had this many attempts in all "
            "is not retried by the healer (replay it by hand)", check=_range(1, 1000)),
    Setting("healer", "dead_letter_batch", int, 100, "dead letters retried per healer run, oldest first",
            check=_range(0, 10000)),
    Setting("healer", "retain_days", int, 30, "completed items (and their inbox events), finished sync runs, "
            "healer runs and resolved alerts older than this are deleted by the healer; dead letters never are",
            check=_range(1, 3650)),
    Setting("events", "retain_days", int, 7, "events (tds_events) older than this are deleted by the healer once "
            "every subscriber has had them; more than the three days a push is retried", check=_range(4, 3650)),
    Setting("events", "subscribers", list, (), "where events are pushed (TOML only): [[events.subscribers]] tables "
            "with url, secret (whsec_ and the base64 of a 24 to 64 byte key, as Standard Webhooks defines it), and "
            "optional types and entities lists (only those events) and name (its label in metrics and logs; without "
            "one, its scheme://host[:port])",
            check=subscribers.check),
    Setting("stats", "match_threshold", float, 95.0, "below this match percentage an entity gets a "
            "stats_mismatch alert and a repair (full) sync", check=_range(0, 100)),
    Setting("stats", "sample_size", int, 200, "objects per entity whose fields the stats run compares "
            "with the local row", check=_range(0, 100000)),
    Setting("zoho", "region", str, "com", "Zoho data centre", check=_choice(*REGIONS)),
    Setting("zoho", "accounts_url", str, "", "default https://accounts.zoho.<region>", check=_optional_url),
    Setting("zoho", "books_url", str, "", "default https://www.zohoapis.<region>/books/v3",
            check=_optional_url),
    Setting("zoho", "inventory_url", str, "", "default https://www.zohoapis.<region>/inventory/v1",
            check=_optional_url),
    Setting("zoho", "client_id", str, "", "OAuth client id", secret=True),
    Setting("zoho", "client_secret", str, "", "OAuth client secret", secret=True),
    Setting("zoho", "refresh_token", str, "", "OAuth refresh token", secret=True),
    Setting("zoho", "organization_id", str, "", "Zoho organization id"),
    Setting("zoho", "requests_per_minute", int, 100, "Zoho API requests per minute per app, shared by "
            "every process", check=_range(1, 10000)),
    Setting("zoho", "daily_budget", int, 1000, "Zoho calls TDS may make in a day (all processes together; the "
            "day of scheduler.timezone): background work never passes it, scheduled jobs first, the detail "
            "backfill from what they leave; a manual tds sync is counted and allowed, with a warning past it. Keep "
            "it within the plan's daily cap less what other integrations spend (Free 1,000, Standard 2,500, "
            "Professional 5,000 per organization)", check=_range(1, 10_000_000)),
    Setting("zoho", "max_concurrency", int, 5, "simultaneous Zoho calls, all processes together (Zoho's cap per "
            "organization: 5 on the free plan, 10 on paid plans)", check=_range(1, 100)),
    Setting("zoho", "timeout_s", float, 30.0, "read timeout of one Zoho request", check=_range(1, 300)),
    Setting("zoho", "max_attempts", int, 6, "tries of one Zoho request on timeouts and 5xx", check=_range(1, 20)),
    Setting("breakers", "failure_rate", float, 50.0, "percent of failed calls within breakers.window_s that "
            "opens a circuit breaker (one per entity, one per Zoho app; shared by every process)",
            check=_range(1, 100)),
    Setting("breakers", "window_s", int, 60, "sliding window of the failure rate, in seconds",
            check=_range(1, 3600)),
    Setting("breakers", "min_calls", int, 10, "calls within the window before the failure rate can open "
            "a breaker", check=_range(1, 100000)),
    Setting("breakers", "open_s", float, 60.0, "how long an open breaker refuses calls before trial calls",
            check=_range(0.1, 86400)),
    Setting("breakers", "half_open_calls", int, 3, "trial calls of a half-open breaker; their failure rate "
            "closes it or opens it again", check=_range(1, 1000)),
    Setting("images", "dir", str, "/var/lib/tds/images", "where item images are stored, each file named by the "
            "SHA-256 of its bytes (the systemd unit lets TDS write only there and in /run/tds)", check=_abs_path),
    Setting("images", "max_bytes", int, 4 * 1048576, "largest item image stored; a larger answer from Zoho is "
            "refused (recorded on the image's row, not fetched again until the item's image changes)",
            check=_range(1024, 1024 * 1048576)),
    Setting("log", "level", str, "INFO", "log level", check=_choice("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("scheduler", "enabled", bool, True, "run the scheduled jobs (one leader among every `tds run` "
            "sharing the Redis)"),
    Setting("scheduler", "timezone", str, "UTC", "time zone of the job schedules", check=_timezone),
    Setting("scheduler", "lease_s", int, 30, "leader lease: when the leader dies, another instance takes "
            "over within this time", check=_range(5, 600)),
    Setting("scheduler", "full_sync", str, "0 2 * * *", 'crontab of the full sync of every entity, or "off"',
            check=crontab.check),
    Setting("scheduler", "incremental_sync", str, "0 * * * *",
            "crontab of the incremental sync of the often-changing entities (items, customers, invoices, sales "
            'orders, payments), or "off"', check=crontab.check),
    Setting("scheduler", "incremental_sync_warm", str, "30 */4 * * *",
            "crontab of the incremental sync of the less often changing entities (vendors, bills, credit notes, "
            'stock adjustments); price lists, users and branches wait for the full sync; or "off"',
            check=crontab.check),
    Setting("scheduler", "stock_sync", str, "20 */3 * * *", "crontab of the stock sync of products (the item "
            "list's stock fields; an item whose stock changed has its per-warehouse detail read again by the "
            'detail backfill), or "off"', check=crontab.check),
    Setting("scheduler", "healing", str, "*/15 * * * *", 'crontab of the healer (re-dispatches lost items), '
            'or "off"', check=crontab.check),
    Setting("scheduler", "statistics", str, "0 3 * * *", 'crontab of the statistics collection, or "off"',
            check=crontab.check),
    Setting("scheduler", "detail_backfill", str, "*/10 * * * *", "crontab of the detail backfill (reads the "
            "whole objects rows lack, from what the day's budget leaves after scheduled jobs; each run stops "
            'after 8 minutes), or "off"', check=crontab.check),
)

SECTIONS = tuple(dict.fromkeys(s.section for s in SCHEMA))
ZOHO_CREDENTIALS = ("zoho.client_id", "zoho.client_secret", "zoho.refresh_token", "zoho.organization_id")


def reference_table() -> str:
    """The README's configuration reference, generated from SCHEMA."""
    lines = ["| key | env | default | meaning |", "|---|---|---|---|"]
    for s in SCHEMA:
        shown = str(s.default).lower() if isinstance(s.default, bool) else s.default  # as TOML writes it
        default = "(none)" if s.default in ("", ()) else f"`{shown}`"
        env = "(TOML only)" if s.kind is list else f"`{s.env}`"
        lines.append(f"| `{s.name}` | {env} | {default} | {s.doc} |")
    return "\n".join(lines)
