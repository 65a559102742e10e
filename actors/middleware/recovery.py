"""Recovery: a thread in each worker process that re-dispatches items whose message was lost.

Lost means: a pending item never sent (Redis was down at intake) or sent long ago and not applied
(Redis restarted empty, or the message died with a killed worker before the item was claimed or while
its one-transaction apply ran), a processing item whose lease ran out (its worker was killed while
applying a claimed item), or a failed item whose retry time has come; and sync runs queued whose
message never reached a worker.
Several workers sweep at once safely: rows are taken with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware
from sqlalchemy import exc

from actors import runtime
from tds_daemon.care import healing

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
    """One pass; returns how many items and runs were dispatched again."""
    if not rt.dispatcher.available:
        return 0
    return healing.redispatch(rt.engine, rt.dispatcher, rt.config).sent
