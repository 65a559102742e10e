"""Stop signals that come close together (systemd's SIGTERM, a dying supervisor's, an impatient operator's)
stop every process: none may hang on its own signal handler and go on working unsupervised."""

from __future__ import annotations

import os
import signal
import time

import pytest
from support import TDS, free_port, start_daemon, wait_until, web

pytestmark = pytest.mark.timeout(120)

FLOOD_S = 2.0


def burst(pid: int) -> None:
    """SIGTERM after SIGTERM for FLOOD_S seconds or until ``pid`` has gone: handlers run inside handlers."""
    deadline = time.monotonic() + FLOOD_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return


def exited(proc, timeout: float) -> int:
    wait_until(lambda: proc.poll() is not None, timeout, message=f"pid {proc.pid} to exit")
    return proc.returncode


# Stopped either way: cleanly, or by a signal of the flood that finds the default handler back (once Python
# finalizes) or that ends it while it is still stopping. What must not happen is that it never ends.
STOPPED = (0, -signal.SIGTERM)


def test_a_worker_stops_on_a_burst_of_stop_signals(processes, migrated, tmp_path):
    ready = tmp_path / "worker.ready"  # written once the worker consumes (as under ``tds run``)
    proc = processes.start("worker", [*TDS, "worker"], env={**migrated, "TDS_READY_FILE": str(ready)},
                           ready=ready.exists, timeout=60)
    burst(proc.pid)
    assert exited(proc, 30) in STOPPED, processes.output(proc)


def test_the_daemon_stops_on_a_burst_of_stop_signals_and_leaves_no_child(processes, migrated):
    daemon = start_daemon(processes, migrated)
    children = daemon.children()
    assert children
    burst(daemon.proc.pid)
    exited(daemon.proc, 30)

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_until(lambda: all(gone(p) for p in children), 10, message="every child of the daemon gone")


def test_the_simulator_stops_on_a_burst_of_stop_signals(processes):
    port = free_port()
    proc = processes.start("simulator", [*TDS, "simulator", "--port", str(port)],
                           ready=lambda: web.get(f"http://127.0.0.1:{port}/_sim/info", timeout=2).status_code == 200)
    burst(proc.pid)
    assert exited(proc, 30) in STOPPED, processes.output(proc)
