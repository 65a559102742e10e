"""Child processes of a test: every one goes through ``Processes.start`` (its own session, waited on until it
answers) and at teardown its process group gets SIGTERM, then SIGKILL after a deadline. ``start_daemon``
gives a running ``tds run``; ``start_api`` a ``tds api`` alone (no workers); ``start_private_redis`` a
redis-server of one test alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import redis as redis_lib

from support import web
from support.env import ROOT, TDS, WEBHOOK_TOKEN
from support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Starts and tracks child processes; stops every one of them by process group at teardown."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              ready: Callable[[], object] | None = None, timeout: float = 30) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        if ready:
            def up():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.output(proc)}")
                return ready()
            try:
                wait_until(up, timeout, interval=0.1, message=f"{name} to answer")
            except AssertionError as e:
                raise AssertionError(f"{e}\n--- {name} output ---\n{self.output(proc)}") from None
        return proc

    def output(self, proc: subprocess.Popen, tail: int | None = 6000) -> str:
        for i, (name, p) in enumerate(self.procs):
            if p is proc:
                path = self.log_dir / f"{name}-{i}.log"
                text = path.read_text(errors="replace") if path.exists() else ""
                return text[-tail:] if tail else text
        return ""

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 45) -> int | None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(proc)
        return proc.returncode

    def _kill_group(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group (grandchildren)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self) -> None:
        """Stops every process started here, then kills any child of theirs that outlived its parent (it runs
        in a group of its own): left running, it would consume the next test's messages."""
        for _, proc in reversed(self.procs):
            self.stop(proc)
        orphans = orphans_of({proc.pid for _, proc in self.procs})
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if orphans:
            warnings.warn(f"killed {len(orphans)} process(es) that outlived their tds run: {orphans}", stacklevel=1)


def orphans_of(parents: set[int]) -> list[int]:
    """Living processes whose supervisor (``TDS_PARENT_PID``) is one of ``parents``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        parent = next((kv[15:] for kv in environ if kv.startswith(b"TDS_PARENT_PID=")), None)
        if parent and parent.isdigit() and int(parent) in parents:
            found.append(int(entry))
    return found


class Daemon:
    """A running ``tds run`` and how to talk to it."""

    def __init__(self, proc, base_url: str, env: dict[str, str], procs: Processes):
        self.proc, self.base_url, self.env, self.procs = proc, base_url, env, procs
        self.http = web.Client(base_url=base_url, timeout=10)

    def post(self, entity: str, body, *, token: str | None = WEBHOOK_TOKEN, headers=None, params=None,
             content_type="application/json"):
        h = {"Content-Type": content_type, **(headers or {})}
        if token is not None:
            h["X-TDS-Webhook-Token"] = token
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.http.post(f"/api/tds/webhooks/{entity}", content=content, headers=h, params=params)

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines() if line.strip()]

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines() if " worker" in line]

    def output(self, tail: int | None = 6000) -> str:
        return self.procs.output(self.proc, tail)


def start_daemon(procs: Processes, env: dict[str, str], **overrides: str) -> Daemon:
    port = free_port()
    env = {**env, "TDS_API_BIND": f"127.0.0.1:{port}", **overrides}
    base = f"http://127.0.0.1:{port}"
    proc = procs.start("tds-run", [*TDS, "run"], env=env,
                       ready=lambda: web.get(f"{base}/health/ready", timeout=2).status_code == 200, timeout=60)
    return Daemon(proc, base, env, procs)


class Api:
    """A running ``tds api`` (its HTTP client, its output)."""

    def __init__(self, base: str, proc, procs: Processes):
        self.base, self.proc, self.procs = base, proc, procs
        self.http = web.Client(base_url=base, timeout=20)

    def output(self) -> str:
        return self.procs.output(self.proc, None)


def start_api(procs: Processes, env: dict[str, str], **overrides: str) -> Api:
    """A ``tds api`` of one gunicorn process on a free port, answering ``/health/live``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "TDS_API_BIND": f"127.0.0.1:{port}", "TDS_API_PROCESSES": "1", **overrides}
    proc = procs.start("tds-api", [*TDS, "api"], env=env,
                       ready=lambda: web.get(f"{base}/health/live", timeout=2).status_code == 200)
    return Api(base, proc, procs)


def start_private_redis(processes: Processes, port: int) -> subprocess.Popen:
    """A redis-server of this test alone (never the shared one): stopping or flushing it harms nobody else."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(processes.log_dir)]

    def answers():
        client = redis_lib.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return client.ping()
        finally:
            client.close()

    return processes.start("redis-private", argv, ready=answers, timeout=15)
