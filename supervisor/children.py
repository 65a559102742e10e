"""Child processes of the supervisor: how each is started, watched and stopped."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        # NOTIFY_SOCKET is the supervisor's alone; a child must not speak to systemd for the service.
        env = {k: v for k, v in self.env.items() if k != "NOTIFY_SOCKET"}
        self.proc = subprocess.Popen(self.argv, env=env)
        log.info("started %s pid=%d", self.name, self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, deadline: float) -> bool:
        if not self.proc:
            return True
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"


def tds_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tds_daemon.cli", *args]
