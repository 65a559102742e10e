"""The process tree: the API child and N worker children, kept running one-for-one.

``Tree.tick()`` is the only place children are reaped and restarted; every wait of the supervisor
(startup, reload, drain) calls it, so a child that dies during a reload is still restarted, and
the restart policy still counts it.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from supervisor.children import Child, describe_exit
from supervisor.policy import RestartPolicy
from supervisor.probes import api_answers
from tds_daemon import metrics
from tds_daemon.config import Config

log = logging.getLogger(__name__)


class Tree:
    def __init__(self, config: Config, config_path: str | None, ready_dir: str, command: list[str]):
        """``command``: how to start the ``tds`` command (e.g. ``[python, "-m", "tds"]``); each child is one of
        its subcommands, named by the caller so that the supervisor never names the command's package."""
        self.config, self.config_path, self.ready_dir = config, config_path, ready_dir
        self.command = list(command)
        self.policy = RestartPolicy(config.supervisor.max_restarts, config.supervisor.restart_window_s)
        self.children: dict[str, Child] = {}
        self.retiring: list[Child] = []  # replaced children finishing their in-flight work
        self._due: dict[str, float] = {}  # name -> when a dead child is started again
        self._generation = 0

    # --- building children -------------------------------------------------------------------
    def _argv(self, subcommand: str) -> list[str]:
        return [*self.command, subcommand, *(["--config", self.config_path] if self.config_path else [])]

    def make_api(self) -> Child:
        return Child("api", self._argv("api"), dict(os.environ),
                     ready=lambda _: api_answers(self.config.api.bind))

    def make_worker(self, i: int) -> Child:
        self._generation += 1
        ready_file = os.path.join(self.ready_dir, f"worker-{i}.{self._generation}")
        return Child(f"worker-{i}", self._argv("worker"), dict(os.environ), ready_file=ready_file)

    def worker_names(self) -> list[str]:
        return [n for n in self.children if n.startswith("worker-")]

    def start(self) -> None:
        self.add(self.make_api())
        for i in range(1, self.config.workers.processes + 1):
            self.add(self.make_worker(i))

    def replace(self, child: Child) -> None:
        """Put an already started child in place of the one with its name (which the caller retires)."""
        self.children[child.name] = child
        self._due.pop(child.name, None)

    def add(self, child: Child) -> None:
        self.children[child.name] = child
        self._due.pop(child.name, None)
        child.start()

    # --- watching ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Reap dead children and start again those whose backoff has passed (may raise GiveUp)."""
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.name in self._due:
                if now >= self._due[child.name]:
                    del self._due[child.name]
                    metrics.child_restarts.labels(child.name).inc()
                    child.start()
                continue
            code = child.poll()
            if code is None:
                continue
            how = f"pid={child.pid} {describe_exit(code)}"
            delay = self.policy.delay(child.name, now, describe_exit(code))
            log.warning("%s %s; restarting in %.1fs", child.name, how, delay)
            self._due[child.name] = now + delay
        self.retiring = [c for c in self.retiring if c.poll() is None]

    def all_ready(self) -> bool:
        return all(c.is_ready() for c in self.children.values())

    def all_running(self) -> bool:
        return not self._due and all(c.running for c in self.children.values())

    def not_ready(self) -> list[str]:
        return [c.name for c in self.children.values() if not c.is_ready()]

    # --- stopping ---------------------------------------------------------------------------
    def retire(self, child: Child) -> None:
        """Ask a replaced child to finish its in-flight work and exit; it is no longer restarted."""
        self.retiring.append(child)
        child.signal(signal.SIGTERM)

    def everyone(self) -> list[Child]:
        return [*self.children.values(), *self.retiring]

    def kill_all(self) -> None:
        for child in self.everyone():
            child.kill()
