"""Test harness: a scratch database and Redis db per session, tracked child processes, wait_until.

Every process a test starts goes through ``Processes.start``: its own session, waited on until it
answers, and at teardown its process group gets SIGTERM, then SIGKILL after a deadline. Nothing
outlives the test that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TDS_TEST_PG", "postgresql+psycopg2://127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TDS_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("TDS_TEST_REDIS_DB", "11"))
WEBHOOK_TOKEN = "test-webhook-token"
ADMIN_TOKEN = "test-admin-token"
TDS = [sys.executable, "-m", "tds_daemon.cli"]


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the thing waited for may not answer yet
            last_error = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def holds_for(condition: Callable[[], object], seconds: float, interval: float = 0.05) -> bool:
    """Whether ``condition`` stays truthy for ``seconds`` (checked every ``interval``): the bounded way to
    show that something does *not* happen, which a wait-until cannot express. False at the first miss."""
    deadline = time.monotonic() + seconds
    while True:
        if not condition():
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(interval)


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
        for _, proc in reversed(self.procs):
            self.stop(proc)


@pytest.fixture(scope="session")
def pg_url():
    name = f"tds_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as c:
        c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": name})
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_namespace():
    # A namespace of its own, not FLUSHDB: two test sessions (or a benchmark) may share the server.
    return f"tds_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def redis_url(redis_namespace):
    url = f"{REDIS_BASE}/{REDIS_DB}"
    yield url
    client = redis_lib.Redis.from_url(url)
    for key in client.scan_iter(match=f"{redis_namespace}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def session_dir():
    path = Path(tempfile.mkdtemp(prefix="tds-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def base_env(pg_url, redis_url, redis_namespace, session_dir):
    """Environment for every TDS process the tests start; recovery is fast so faults heal quickly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDS_") and k != "NOTIFY_SOCKET"}
    env.update({
        "TDS_DATABASE_URL": pg_url,
        "TDS_REDIS_URL": redis_url,
        "TDS_REDIS_NAMESPACE": redis_namespace,
        "TDS_API_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "TDS_API_ADMIN_TOKEN": ADMIN_TOKEN,
        "TDS_API_PROCESSES": "2",
        "TDS_WORKERS_PROCESSES": "2",
        "TDS_WORKERS_THREADS": "4",
        "TDS_WORKERS_LEASE_S": "5",
        "TDS_WORKERS_REDISPATCH_AFTER_S": "5",
        "TDS_WORKERS_SWEEP_INTERVAL_S": "0.5",
        "TDS_WORKERS_MIN_BACKOFF_MS": "100",
        "TDS_WORKERS_MAX_BACKOFF_MS": "1000",
        "TDS_DATABASE_CONNECT_TIMEOUT_S": "2",
        "TDS_REDIS_SOCKET_TIMEOUT_S": "1",
        "PYTHONUNBUFFERED": "1",
        "TDS_IMAGES_DIR": str(session_dir / "images"),
        # No scheduled job may fire in the middle of an unrelated test (the defaults run at :00, :15 ...);
        # the scheduler's own tests turn it on.
        "TDS_SCHEDULER_ENABLED": "false",
    })
    return env


@pytest.fixture(scope="session")
def migrated(base_env):
    subprocess.run([*TDS, "migrate"], env=base_env, check=True, cwd=ROOT, capture_output=True, timeout=120)
    return base_env


@pytest.fixture(scope="session")
def engine(pg_url, migrated):
    eng = create_engine(pg_url, pool_size=2)
    yield eng
    eng.dispose()


def truncate(engine) -> None:
    from tds_daemon import entities

    tables = ", ".join(["tds_sync_queue", "tds_inbox_events", "tds_sync_runs", "tds_sync_cursors", "tds_alerts",
                        "tds_healer_runs", "tds_stats_runs"]
                       + [f"zoho.{e.table}" for e in entities.ENTITIES] + ["zoho.item_images"])
    with engine.begin() as c:
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clean_db(engine):
    truncate(engine)
    yield engine


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory):
    procs = Processes(tmp_path_factory.mktemp("procs"))
    yield procs
    procs.stop_all()


class Daemon:
    """A running ``tds run`` and how to talk to it."""

    def __init__(self, proc, base_url: str, env: dict[str, str], procs: Processes):
        self.proc, self.base_url, self.env, self.procs = proc, base_url, env, procs
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def post(self, entity: str, body, *, token: str | None = WEBHOOK_TOKEN, headers=None, params=None,
             content_type="application/json"):
        import json

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
                       ready=lambda: httpx.get(f"{base}/health/ready", timeout=2).status_code == 200, timeout=60)
    return Daemon(proc, base, env, procs)


@pytest.fixture(scope="module")
def daemon(module_processes, migrated):
    d = start_daemon(module_processes, migrated)
    yield d
    d.http.close()


def queue_counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT status, count(*) FROM tds_sync_queue GROUP BY 1")).all())


def applies_blocked(engine) -> int:
    """Worker transactions of this database waiting for a row lock: an apply in flight, held by a test.
    (A fresh item stays 'pending' while its transaction runs, so the queue's states cannot tell.)"""
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND application_name = 'tds-worker' AND wait_event_type = 'Lock'")).scalar_one()


def all_applied(engine, expected: int) -> bool:
    counts = queue_counts(engine)
    return counts.get("completed", 0) == expected and sum(counts.values()) == expected


# --- the Zoho simulator (tests/sim_harness.py) and a private Redis --------------------------------------

@pytest.fixture(scope="module")
def sim_base(module_processes):
    from sim_harness import SCALE, SEED

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    module_processes.start("simulator", [*TDS, "simulator", "--port", str(port), "--seed", str(SEED),
                                         "--scale", str(SCALE), "--rate-limit", "0", "--refresh-limit", "0"],
                           env={**os.environ, "PYTHONUNBUFFERED": "1"},
                           ready=lambda: httpx.get(f"{base}/_sim/info", timeout=2).status_code == 200, timeout=30)
    return base


@pytest.fixture
def sim(sim_base):
    from sim_harness import NO_FAULTS, Sim

    s = Sim(sim_base)
    s.faults(**NO_FAULTS)
    s.reset()
    yield s
    s.faults(**NO_FAULTS)
    s.http.close()


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


@pytest.fixture
def pull_env(migrated, engine, sim_base, redis_namespace, tmp_path):
    """A clean database and a Redis namespace of this test's own (empty limiter window, no cached token,
    no calls counted today), TDS pointed at the module's simulator."""
    from sim_harness import zoho_env

    truncate(engine)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    return {**migrated, **zoho_env(sim_base), "TDS_REDIS_NAMESPACE": f"{redis_namespace}_{uuid.uuid4().hex[:8]}",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


@pytest.fixture
def tds(pull_env):
    from pull_harness import Tds

    t = Tds(pull_env)
    yield t
    t.close()
