"""``GET /api/tds/monitoring/scheduler/jobs``: the jobs, their schedules and last runs, and the leader;
``POST /api/tds/monitoring/scheduler/jobs/{id}/run``: one job now.

Read from what the leading scheduler records in Redis (see ``tds_daemon.care.jobs``); the API process runs
no scheduler. A job no leader has recorded yet is shown from this process's configuration. Running a
job now sends what the scheduler would send (the same ``JobSpec.send``), from this process, and
records its outcome where the scheduler records its own.
"""

from __future__ import annotations

import datetime as dt
import json

import falcon
import redis

from tds_daemon import crontab
from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, redis_unavailable
from tds_daemon.care.jobs import BY_ID, JOBS, JobContext, JobError, leader_key, read_status, status_key
from tds_daemon.config import Config
from tds_daemon.metrics import scheduler_job_runs


class SchedulerJobsResource:
    access = Access.ADMIN

    def __init__(self, config: Config, client: redis.Redis):
        self.config, self.client = config, client

    def on_get(self, req, resp) -> None:
        ns = self.config.redis.namespace
        try:
            leader = self.client.get(leader_key(ns))
            records = read_status(self.client, ns)
        except (redis.RedisError, OSError) as e:
            raise redis_unavailable(e, "the scheduler's state") from None
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


class SchedulerJobRunResource:
    access = Access.ADMIN

    def __init__(self, config: Config, client: redis.Redis, engine, dispatcher):
        self.config, self.client, self.engine, self.dispatcher = config, client, engine, dispatcher

    def on_post(self, req, resp, job_id: str) -> None:
        spec = BY_ID.get(job_id)
        if spec is None:
            raise ApiError(404, "unknown_job", f"no scheduled job {job_id[:60]!r}; known: {', '.join(BY_ID)}")
        started = dt.datetime.now(dt.UTC)
        try:
            report = spec.send(JobContext(self.config, self.engine, self.dispatcher))
        except JobError as e:
            self._record(job_id, started, "error", str(e))
            raise ApiError(503, "job_not_sent", str(e), headers={"Retry-After": "5"}) from None
        self._record(job_id, started, "ok", None)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "job": job_id, "report": report}

    def _record(self, job_id: str, started: dt.datetime, outcome: str, error: str | None) -> None:
        scheduler_job_runs.labels(job_id, outcome).inc()
        ns = self.config.redis.namespace
        try:
            record = read_status(self.client, ns).get(job_id, {})
            record.update(last_run=started.isoformat(), outcome=outcome, error=error)
            self.client.hset(status_key(ns), job_id, json.dumps(record))
        except (redis.RedisError, OSError):
            pass  # the job was sent; only its record is missing
