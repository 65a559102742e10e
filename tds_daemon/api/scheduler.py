"""``GET /api/tds/monitoring/scheduler/jobs``: the jobs, their schedules and last runs, and the leader.

Read from what the leading scheduler records in Redis (see ``tds_daemon.jobs``); the API process runs
no scheduler. A job no leader has recorded yet is shown from this process's configuration.
"""

from __future__ import annotations

import redis

from .. import crontab
from ..config import Config
from ..jobs import JOBS, leader_key, read_status
from .errors import ApiError


class SchedulerJobsResource:
    def __init__(self, config: Config, client: redis.Redis):
        self.config, self.client = config, client

    def on_get(self, req, resp) -> None:
        ns = self.config.redis.namespace
        try:
            leader = self.client.get(leader_key(ns))
            records = read_status(self.client, ns)
        except (redis.RedisError, OSError) as e:
            raise ApiError(503, "redis_unavailable", f"Redis does not answer ({type(e).__name__}); the scheduler "
                           "state lives there", headers={"Retry-After": "5"}) from None
        enabled = self.config.scheduler.enabled
        jobs = []
        for spec in JOBS:
            record = records.get(spec.id, {})
            expr = self.config.get(spec.config_key)
            trigger = record.get("trigger") or ("off" if crontab.is_off(expr) else expr)
            jobs.append({
                "id": spec.id, "name": spec.name, "trigger": trigger, "enabled": enabled and trigger != "off",
                "next_run": record.get("next_run"), "last_run": record.get("last_run"),
                "last_outcome": record.get("outcome"), "last_error": record.get("error"),
            })
        resp.media = {"leader": leader.decode() if isinstance(leader, bytes) else leader,
                      "timezone": self.config.scheduler.timezone, "jobs": jobs}
