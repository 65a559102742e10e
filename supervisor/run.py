"""``tds run``: the supervisor, the main process of the service.

It owns the process tree (``tree``), the scheduler, and the conversation with systemd (READY,
STATUS, WATCHDOG, RELOADING, STOPPING). Signals only set flags; everything happens in the main loop,
one thing at a time:

- SIGHUP: reload (``reload``): a bad file is refused and the old configuration stays; a good one
  reaches gunicorn (graceful reload), each worker (replaced one at a time) and the scheduler.
- SIGTERM/SIGINT: drain: STOPPING=1, scheduler stopped, the API stops accepting and finishes its
  requests, then the workers finish their messages, within ``supervisor.drain_timeout_s``; then
  exit 0. A second signal kills every child at once.
- A child that dies too often (``policy``): stop everything, exit 1, and let systemd restart us.
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from collections.abc import Callable

from supervisor import reload
from supervisor.children import ready_dir
from supervisor.policy import GiveUp
from supervisor.publishing import Publishing
from supervisor.sdnotify import Notifier
from supervisor.tree import Tree
from tds_daemon.config import Config
from tds_daemon.wake import Wake

log = logging.getLogger(__name__)
TICK_S = 0.2
DRAIN_GRACE_S = 5  # beyond drain_timeout_s, for processes to exit after their work is done


class Interrupted(Exception):
    """A stop was requested while the supervisor was waiting for something else."""


class Supervisor:
    def __init__(self, config: Config, config_path: str | None, command: list[str], notifier: Notifier | None = None):
        self.config, self.config_path = config, config_path
        self.notify = notifier or Notifier()
        self.tree = Tree(config, config_path, ready_dir(), command)
        self.scheduler = None
        self.publishing = Publishing()
        self.ready = False
        self.stop_requests = 0
        self.reload_requested = False
        self._wake = Wake()  # raised by signal handlers (threading.Event would deadlock there)
        self._last_ping = 0.0
        self._status = ""
        self._engine = None
        self._engine_url = None

    def engine(self):
        """A small engine for the supervisor's own writes (alerts), made on first use and after a URL change."""
        from tds_daemon.store.db import make_engine

        if self._engine is None or self._engine_url != self.config.database.url:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = make_engine(self.config, pool_size=1, application_name="tds-supervisor")
            self._engine_url = self.config.database.url
        return self._engine

    # --- signals ----------------------------------------------------------------------------
    def _on_stop(self, signum, _frame) -> None:
        self.stop_requests += 1
        if self.stop_requests > 1:
            # A second signal forces: no waiting on anything, not even the main loop.
            for child in self.tree.everyone():
                child.signal(signal.SIGKILL, group=True)
        self._wake.set()

    def _on_hup(self, _signum, _frame) -> None:
        self.reload_requested = True
        self._wake.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        self.install_signals()
        self.notify.status("starting")
        try:
            self.tree.start()
            self.scheduler = _start_scheduler(self.config)
            self.publishing.apply(self.config)
            log.info("tds starting: api on %s, %d worker process(es)", self.config.api.bind,
                     self.config.workers.processes)
            while not self.stop_requests:
                if self.reload_requested:
                    self.reload_requested = False
                    reload.reload(self)
                self.wait(lambda: False, TICK_S)
        except Interrupted:
            pass
        except GiveUp as e:
            log.error("%s", e)
            self.notify.stopping(f"giving up: {e}")
            self._shutdown(forced=False)
            return 1
        return self._shutdown(forced=self.stop_requests > 1)

    def wait(self, condition: Callable[[], bool], timeout: float, interruptible: bool = True) -> bool:
        """Wait for ``condition`` while keeping children, readiness and the watchdog going."""
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            if interruptible and self.stop_requests:
                raise Interrupted
            if condition():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._wake.wait(min(TICK_S, remaining))
            self._wake.clear()

    def tick(self) -> None:
        self.tree.tick()
        if not self.ready and self.tree.all_ready():
            self.ready = True
            self.notify.ready()
            log.info("tds ready: api on %s, %d worker process(es)", self.config.api.bind,
                     len(self.tree.worker_names()))
        self.set_status(self.describe())
        self._watchdog()

    def describe(self) -> str:
        if not self.ready:
            return "starting: waiting for " + ", ".join(self.tree.not_ready())
        role = "off" if self.scheduler is None else ("leader" if self.scheduler.is_leader() else "standby")
        return (f"running: api on {self.config.api.bind}, {len(self.tree.worker_names())} worker process(es), "
                f"scheduler {role}")

    def set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.notify.status(text)

    def _watchdog(self) -> None:
        interval = self.notify.watchdog_interval_s
        if not interval or time.monotonic() - self._last_ping < interval:
            return
        # Only a healthy tree earns a ping: a wedged supervisor, a dead scheduler thread or a child
        # that cannot be kept alive must let systemd's watchdog fire.
        if self.tree.all_running() and (self.scheduler is None or self.scheduler.alive()):
            self.notify.watchdog()
            self._last_ping = time.monotonic()

    # --- stopping ---------------------------------------------------------------------------
    def _shutdown(self, forced: bool) -> int:
        drain_s = self.config.supervisor.drain_timeout_s
        if forced:
            log.warning("second stop signal: killing every child now")
            self.notify.stopping("killing children")
            self.tree.kill_all()
        else:
            self.notify.stopping(f"draining (up to {drain_s}s)")
            log.info("stopping: draining for up to %ds", drain_s)
        if self.scheduler is not None:
            self.scheduler.stop()
        self.publishing.stop()  # events stay in the outbox; the next start pushes them
        deadline = time.monotonic() + drain_s + DRAIN_GRACE_S
        # The API first, so that nothing new arrives while the workers finish what they hold.
        api = [c for c in self.tree.everyone() if c.name == "api"]
        workers = [c for c in self.tree.everyone() if c.name != "api"]
        for group in (api, workers):
            for child in group:
                child.signal(signal.SIGTERM)
            for child in group:
                while not child.wait(min(deadline, time.monotonic() + TICK_S)):
                    if time.monotonic() >= deadline or self.stop_requests > 1:
                        log.warning("%s pid=%s still running; killing it", child.name, child.pid)
                        child.kill()
                        break
        shutil.rmtree(self.tree.ready_dir, ignore_errors=True)
        if self._engine is not None:
            self._engine.dispose()
        if self.stop_requests > 1:
            log.warning("stopped by force: in-flight messages were cut off (PostgreSQL still holds their items)")
            return 1
        log.info("stopped")
        return 0


def _start_scheduler(config: Config):
    # Imported here: it loads tds_daemon.metrics, which needs the metrics directory the CLI prepares.
    from supervisor.scheduler import Scheduler

    scheduler = Scheduler(config)
    scheduler.start()  # with scheduler.enabled false it only answers alive() and is_leader()
    return scheduler


def run(config: Config, config_path: str | None, command: list[str]) -> int:
    """Supervise until stopped; ``command`` starts the ``tds`` command, whose ``api`` and ``worker`` are the
    children (the caller names it: the supervisor does not know the command's package)."""
    return Supervisor(config, config_path, command).run()
