"""Child processes of the supervisor: how each is started, probed, signalled and reaped.

Each child runs in its own process group, so that a forced stop reaches gunicorn's own workers too,
and a Ctrl-C on a terminal reaches only the supervisor, which then drains the children in order.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable

from tds_daemon.logs import ROLE_ENV

log = logging.getLogger(__name__)


class Child:
    """One child process; ``ready`` tells whether it has come up (it is asked only while it runs)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str],
                 ready: Callable[[Child], bool] | None = None, ready_file: str | None = None):
        self.name, self.argv, self.ready_file = name, argv, ready_file
        # NOTIFY_SOCKET is the supervisor's alone; a child must not speak to systemd for the service.
        self.env = {k: v for k, v in env.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self.env["TDS_PARENT_PID"] = str(os.getpid())
        self.env[ROLE_ENV] = name  # how its log lines name it
        if ready_file:
            self.env["TDS_READY_FILE"] = ready_file
        self._ready = ready
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> None:
        if self.ready_file and os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        self.proc = subprocess.Popen(self.argv, env=self.env, process_group=0)
        self.started_at = time.monotonic()
        log.info("started %s pid=%d", self.name, self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        """The exit status if the process has ended (reaping it), else None."""
        return self.proc.poll() if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def is_ready(self) -> bool:
        if not self.running:
            return False
        if self.ready_file:
            return os.path.exists(self.ready_file)
        return self._ready(self) if self._ready else True

    def signal(self, sig: int, group: bool = False) -> None:
        if not self.running:
            return
        try:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
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

    def kill(self) -> None:
        """SIGKILL to the child's whole process group (gunicorn's workers included), then reap it."""
        self.signal(signal.SIGKILL, group=True)
        self.wait(time.monotonic() + 5)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def ready_dir() -> str:
    """Where workers drop the file that says they consume (private to this supervisor)."""
    return tempfile.mkdtemp(prefix="tds-ready-")
