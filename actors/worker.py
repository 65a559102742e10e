"""One worker process: an embedded Dramatiq ``Worker`` consuming every entity queue.

Run by ``tds worker`` in the foreground, or as a child of ``tds run``. SIGTERM/SIGINT stop it
gracefully: in-flight messages finish, prefetched ones go back to Redis.
"""

from __future__ import annotations

import logging
import os
import signal

import dramatiq
from dramatiq.middleware import TimeLimit

from actors import detail, entity, healer, runtime, stats, sync
from actors.middleware import Recovery
from actors.middleware.intake_first import IntakeFirst
from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.config import Config
from tds_daemon.guard.breakers import Breakers, redis_for_breakers
from tds_daemon.store.db import make_engine
from tds_daemon.wake import Wake

log = logging.getLogger(__name__)
# How long an idle consumer waits between polls of Redis: bounds the receipt→applied latency.
POLL_MS = 100


class _Worker(dramatiq.Worker):
    """Dramatiq's worker, minus the consumers of delay queues, which TDS never uses.

    TDS sends no delayed message: a retry is scheduled in PostgreSQL (``next_attempt_at``) and sent
    again by the recovery sweep, and no Retries middleware is installed. Dramatiq would still start a
    consumer thread for each queue's ``.DQ`` delay queue, half of the process's consumers, each polling
    Redis every POLL_MS for nothing, CPU taken from the work (docs/PERFORMANCE.md). Were a delayed
    message ever sent, it would stay in Redis, and the recovery sweep would still dispatch the work it
    stood for: PostgreSQL holds it.
    """

    def _add_consumer(self, queue_name: str, *, delay: bool = False) -> None:
        if not delay:
            super()._add_consumer(queue_name)


def build(config: Config) -> tuple[dramatiq.Broker, dramatiq.Worker]:
    hold_s = min(config.workers.intake_first_s, config.workers.redispatch_after_s / 2)
    broker = make_broker(config, middleware=[IntakeFirst(config.redis.namespace, hold_s),
                                             TimeLimit(time_limit=5 * 60 * 1000), Recovery()])
    engine = make_engine(config, pool_size=config.workers.threads + 1, application_name="tds-worker")
    breakers = Breakers.from_config(config, redis_for_breakers(config), alerts=engine)
    runtime.install(runtime.Runtime(config, engine, Dispatcher(broker, origin="recovery"), breakers))
    entity.declare(broker)
    sync.declare(broker)
    healer.declare(broker)
    stats.declare(broker)
    detail.declare(broker)
    worker = _Worker(broker, worker_threads=config.workers.threads, worker_timeout=POLL_MS)
    return broker, worker


def run(config: Config) -> int:
    stop = Wake()  # set by the signal handler: a threading.Event there can deadlock the process
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Before any thread starts, so that every thread of the process inherits it.
    nice = os.nice(config.workers.nice) if config.workers.nice else os.nice(0)
    broker, worker = build(config)
    worker.start()
    log.info("worker started: threads=%d queues=%d nice=%d", config.workers.threads,
             len(broker.get_declared_queues()), nice)
    _say_ready()
    stop.wait()
    runtime.get().stopping.set()  # long actors (the detail backfill) end at their next object
    log.info("worker stopping: in-flight messages have %ds to finish", config.supervisor.drain_timeout_s)
    worker.stop(timeout=config.supervisor.drain_timeout_s * 1000)
    broker.close()
    runtime.get().engine.dispose()
    return 0


def _say_ready() -> None:
    """Tell the supervisor (``tds run``) that this worker consumes: it waits for that before READY=1."""
    path = os.environ.get("TDS_READY_FILE")
    if path:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
