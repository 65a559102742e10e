"""Recovery: a thread in each worker process that re-dispatches items whose message was lost.

Lost means: a pending item never sent (Redis was down at intake) or sent long ago and not applied
(Redis restarted empty, or the message died with a killed worker before it was claimed), a
processing item whose lease ran out (its worker was killed mid-message), or a failed item whose
retry time has come; and sync runs queued whose message never reached a worker.
Several workers sweep at once safely: rows are taken with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware
from sqlalchemy import exc

from tds_daemon import entities, runs, syncqueue
from tds_daemon.sync import SYNC_ACTOR, SYNC_QUEUE

from .. import runtime

log = logging.getLogger(__name__)


class Recovery(Middleware):
    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        self._thread = threading.Thread(target=self._loop, name="tds-recovery", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        rt = runtime.get()
        while not self._stop.wait(rt.config.workers.sweep_interval_s):
            try:
                sweep(rt)
            except exc.SQLAlchemyError as e:
                log.warning("recovery sweep skipped: database unavailable (%s)", type(e).__name__)
            except Exception:
                log.exception("recovery sweep failed")


def sweep(rt) -> int:
    """One pass; returns how many items were dispatched again."""
    if not rt.dispatcher.available:
        return 0
    cfg = rt.config.workers
    with rt.engine.begin() as conn:
        buried, lost = syncqueue.recover(conn, cfg.redispatch_after_s, cfg.max_attempts)
    if buried:
        log.error("recovery: %d item(s) moved to dead_letter after repeated worker loss", buried)
    unsent = [item_id for item_id, entity in lost
              if not rt.dispatcher.send(entities.BY_NAME[entity], item_id)]
    if unsent:
        with rt.engine.begin() as conn:
            syncqueue.undispatch(conn, unsent)
    if lost:
        log.info("recovery: dispatched %d item(s) again (%d could not be sent)", len(lost), len(unsent))
    with rt.engine.begin() as conn:
        queued = runs.lost_queued(conn, cfg.redispatch_after_s)
    for run_id in queued:
        rt.dispatcher.send_to(SYNC_QUEUE, SYNC_ACTOR, run_id)
    return len(lost) - len(unsent) + len(queued)
