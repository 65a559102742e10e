"""``GET /api/tds/data-validation/{orphans|products|integrity}`` and the ``tds_data_check_findings`` gauge.

The checks themselves are ``tds_daemon.care.datachecks``. The gauge is read at scrape time from the latest stats
run's stored report rather than by running the checks: they scan whole tables (seconds on a large copy), too
much for every scrape, and a stored result is the same for every process and survives restarts.
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select

from tds_daemon import entities
from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError
from tds_daemon.care import datachecks
from tds_daemon.care.checkrules import CHECKS
from tds_daemon.store.schema import stats_runs

log = logging.getLogger(__name__)


class DataValidationResource:
    access = Access.ADMIN

    def __init__(self, engine, schema: str):
        self.engine, self.schema = engine, schema

    def on_get(self, req, resp, check: str) -> None:
        if check not in CHECKS:
            raise ApiError(404, "unknown_check", f"no data check {check[:60]!r}; known: {', '.join(CHECKS)}")
        limit = req.get_param_as_int("limit", min_value=1, max_value=datachecks.MAX_LIMIT) or datachecks.DEFAULT_LIMIT
        resp.media = datachecks.run(self.engine, self.schema, check, limit)


def latest_counts(engine) -> dict[str, dict[str, int]] | None:
    """{check: {entity: findings}} of the latest stats run that ran the data checks (None if none did); a
    check that failed in that run is left out."""
    with engine.connect() as conn:
        report = conn.execute(select(stats_runs.c.report["data_checks"]).where(stats_runs.c.report.has_key(
            "data_checks")).order_by(stats_runs.c.id.desc()).limit(1)).scalar_one_or_none()
    if report is None:
        return None
    return {check: result["counts"] for check, result in report.items() if "counts" in result}


class DataCheckCollector:
    """``tds_data_check_findings{check,entity}``: every check and entity, 0 where the latest run found nothing,
    so that a count rising from nothing is a change an alert can see."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        try:
            counts = latest_counts(self.engine)
        except Exception as e:
            log.warning("metrics: data check counts unavailable: %s", type(e).__name__)
            return
        if counts is None:
            return
        gauge = GaugeMetricFamily("tds_data_check_findings", "Findings of the data checks (orphans, products, "
                                  "integrity) by entity, as the latest stats run found them",
                                  labels=["check", "entity"])
        for check, per_entity in counts.items():
            for spec in entities.ENTITIES:
                gauge.add_metric([check, spec.name], per_entity.get(spec.name, 0))
        yield gauge
