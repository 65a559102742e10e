"""Prometheus metrics written by every process (multiprocess mode) and served by the API.

``PROMETHEUS_MULTIPROC_DIR`` must be set before prometheus_client is first imported: the CLI does
that (``tds.preflight.prepare_metrics_dir``) before importing anything that imports this module.
Labels are bounded: entity names, outcomes and statuses, never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

webhooks_received = Counter(
    "tds_webhooks_received", "Webhook deliveries by entity and outcome (accepted, duplicate or the "
    "error code)", ["entity", "outcome"])
sync_items = Counter(
    "tds_sync_items", "Sync items finished by entity and outcome (created, updated, unchanged, stale, "
    "deleted, failed, dead_letter)", ["entity", "outcome"])
dispatches = Counter(
    "tds_dispatches", "Messages sent to the broker by origin (intake, recovery) and result",
    ["origin", "result"])
webhook_apply_seconds = Histogram(
    "tds_webhook_apply_seconds", "Time from webhook receipt to its row applied", ["entity"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
zoho_requests = Counter(
    "tds_zoho_requests", "Requests to the Zoho API by app and HTTP status (or timeout, error)", ["app", "status"])
zoho_token_refreshes = Counter(
    "tds_zoho_token_refreshes", "OAuth access token refreshes by outcome (ok, refused, unavailable)", ["outcome"])
child_restarts = Counter(
    "tds_child_restarts", "Children of tds run started again after they died, by child (api, worker-N)",
    ["child"])
dashboard_logins = Counter(
    "tds_dashboard_logins", "Dashboard sign-ins by outcome (ok, refused: a wrong or missing token, "
    "rate_limited: too many wrong tokens from that address in a minute)", ["outcome"])
config_reloads = Counter(
    "tds_config_reloads", "Configuration reloads (SIGHUP) by outcome (applied, refused)", ["outcome"])
scheduler_job_runs = Counter(
    "tds_scheduler_job_runs", "Scheduled job runs by job (full_sync, incremental_sync, stock_sync, healing, "
    "statistics) and outcome (ok, error)", ["job", "outcome"])
sync_runs = Counter(
    "tds_sync_runs", "Sync runs of the daemon (and of the process that ran them) by entity, kind (full, incremental, "
    "stock) and outcome (succeeded, failed, skipped)", ["entity", "kind", "outcome"])
sync_objects = Counter(
    "tds_sync_objects", "Objects pulled by sync runs by entity and outcome (created, updated, unchanged, stale, "
    "deleted)", ["entity", "outcome"])
events_delivered = Counter(
    "tds_events_delivered", "Events pushed to a subscriber and taken (a 2xx), by subscriber", ["subscriber"])
events_failed = Counter(
    "tds_events_failed", "Event pushes a subscriber did not take (no answer in time, or not a 2xx), by subscriber",
    ["subscriber"])
