"""The scheduler's jobs as data, and the names that the scheduler, the actors and the API agree on.

A job only sends messages; the work happens in a worker. The API lists the jobs from here without
importing the supervisor or the actors, and reads what the leading scheduler recorded in Redis:

- ``<namespace>:scheduler:leader``: the instance id of the leader (a key with the lease as its TTL);
- ``<namespace>:scheduler:jobs``: a hash, one field per job id, each a JSON object with ``trigger``
  (the crontab, or "off"), ``next_run``, ``last_run`` (ISO 8601 with offset), ``outcome`` ("ok" or
  "error") and ``error`` of the last run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tds_daemon import entities
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.config import Config
from tds_daemon.pull import launch
from tds_daemon.pull.detail import DETAIL_ACTOR, DETAIL_QUEUE

HEALER_QUEUE, HEALER_ACTOR = "tds.healer", "heal"
STATS_QUEUE, STATS_ACTOR = "tds.stats", "collect_stats"


def leader_key(namespace: str) -> str:
    return f"{namespace}:scheduler:leader"


def status_key(namespace: str) -> str:
    return f"{namespace}:scheduler:jobs"


def read_status(client, namespace: str) -> dict[str, dict[str, Any]]:
    """The recorded state of each job (job id → record); a record that is not JSON is left out."""
    out = {}
    for field, value in client.hgetall(status_key(namespace)).items():
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict):
            out[field.decode() if isinstance(field, bytes) else field] = record
    return out


class JobError(Exception):
    """A job could not send all of its messages; the text says what happened and what follows."""


@dataclass(frozen=True)
class JobContext:
    config: Config
    engine: Any  # sqlalchemy Engine
    dispatcher: Dispatcher


def _sync_runs(kind: str, wanted: Callable[[entities.EntitySpec], bool]) -> Callable[[JobContext], str]:
    def send(ctx: JobContext) -> str:
        names = [e.name for e in entities.ENTITIES if wanted(e)]
        started = launch.queue(ctx.engine, ctx.dispatcher, names, kind, "scheduler", unless_queued=True)
        unsent = sum(not r.dispatched for r in started)
        if unsent:
            raise JobError(f"{unsent} of {len(started)} {kind} run(s) queued but not sent (broker unavailable); "
                           "the workers' recovery sweep sends them when Redis answers")
        return f"kind={kind} runs={len(started)} already_queued={len(names) - len(started)}"

    return send


def _message(queue: str, actor: str) -> Callable[[JobContext], str]:
    def send(ctx: JobContext) -> str:
        if not ctx.dispatcher.send_to(queue, actor):
            raise JobError(f"message to {actor} not sent: broker unavailable")
        return f"queue={queue}"

    return send


@dataclass(frozen=True)
class JobSpec:
    id: str  # also the metric label and the status hash field
    name: str
    config_key: str  # its crontab
    send: Callable[[JobContext], str]  # sends the job's message(s); returns a short key=value report


JOBS: tuple[JobSpec, ...] = (
    JobSpec("full_sync", "full sync of every entity", "scheduler.full_sync", _sync_runs("full", lambda e: True)),
    # Incremental pulls by how often an entity changes (its pull_tier); cold ones wait for the full pull.
    JobSpec("incremental_sync", "incremental sync of the often-changing entities", "scheduler.incremental_sync",
            _sync_runs("incremental", lambda e: e.pull_tier == "hot")),
    JobSpec("incremental_sync_warm", "incremental sync of the less often changing entities",
            "scheduler.incremental_sync_warm", _sync_runs("incremental", lambda e: e.pull_tier == "warm")),
    # The stock pull refreshes only the entities that carry stock columns: products.
    JobSpec("stock_sync", "stock sync of products", "scheduler.stock_sync",
            _sync_runs("stock", lambda e: bool(e.stock_columns))),
    JobSpec("healing", "healing (re-dispatch lost items)", "scheduler.healing",
            _message(HEALER_QUEUE, HEALER_ACTOR)),
    JobSpec("statistics", "statistics collection", "scheduler.statistics", _message(STATS_QUEUE, STATS_ACTOR)),
    JobSpec("detail_backfill", "detail backfill (whole objects that rows lack, from the budget's remainder)",
            "scheduler.detail_backfill", _message(DETAIL_QUEUE, DETAIL_ACTOR)),
)
BY_ID = {j.id: j for j in JOBS}
