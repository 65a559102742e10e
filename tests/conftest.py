"""Fixtures: a scratch database and Redis namespace per session, tracked child processes, the daemon, the Zoho
simulator and a pulling TDS pointed at it. The helpers they are built from (and that tests import) live in
the ``support`` package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text
from support import (
    ADMIN_TOKEN,
    PG_ADMIN_URL,
    REDIS_BASE,
    REDIS_DB,
    ROOT,
    TDS,
    WEBHOOK_TOKEN,
    Processes,
    free_port,
    start_daemon,
    truncate,
    web,
)


@pytest.fixture(scope="session")
def pg_url():
    name = f"tds_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
        # A scratch database need not outlive a crash of PostgreSQL: commits do not wait for the disk.
        c.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
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
    # Nothing of the runner's own: no TDS setting, no systemd socket, no terminal size (a test that wants
    # one sets COLUMNS itself).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TDS_") and k not in ("NOTIFY_SOCKET", "COLUMNS", "LINES")}
    env.update({
        "TDS_DATABASE_URL": pg_url,
        "TDS_REDIS_URL": redis_url,
        "TDS_REDIS_NAMESPACE": redis_namespace,
        "TDS_API_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "TDS_API_ADMIN_TOKEN": ADMIN_TOKEN,
        # One of each: a process less to start and feed per daemon; the tests of what several processes do
        # (a worker killed while another goes on, reloads, aggregated metrics) ask for two (TWO_OF_EACH).
        "TDS_API_PROCESSES": "1",
        "TDS_WORKERS_PROCESSES": "1",
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


@pytest.fixture(scope="module")
def daemon(module_processes, migrated):
    d = start_daemon(module_processes, migrated)
    yield d
    d.http.close()


# --- the Zoho simulator (tests/support/sim.py) ----------------------------------------------------------

@pytest.fixture(scope="module")
def sim_base(module_processes):
    from support.sim import SCALE, SEED

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    module_processes.start("simulator", [*TDS, "simulator", "--port", str(port), "--seed", str(SEED),
                                         "--scale", str(SCALE), "--rate-limit", "0", "--refresh-limit", "0"],
                           env={**os.environ, "PYTHONUNBUFFERED": "1"},
                           ready=lambda: web.get(f"{base}/_sim/info", timeout=2).status_code == 200, timeout=30)
    return base


@pytest.fixture
def sim(sim_base):
    from support.sim import NO_FAULTS, Sim

    s = Sim(sim_base)
    s.faults(**NO_FAULTS)
    s.reset()
    yield s
    s.faults(**NO_FAULTS)
    s.http.close()


@pytest.fixture
def own_namespace(redis_namespace):
    """A Redis namespace of this test alone: an empty limiter window, no cached token, no calls counted
    today, and no worker of another test consuming what it sends."""
    return f"{redis_namespace}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def env(migrated, engine, own_namespace):
    """A clean database and a Redis namespace of this test's own: what a TDS process of this test loads."""
    truncate(engine)
    return {**migrated, "TDS_REDIS_NAMESPACE": own_namespace}


@pytest.fixture
def pull_env(env, sim_base, tmp_path):
    """``env`` with TDS pointed at the module's simulator (``zoho_env``) and a metrics directory of its own."""
    from support.sim import zoho_env

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    return {**env, **zoho_env(sim_base), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


@pytest.fixture
def api(pg_url, redis_url, own_namespace, engine, tmp_path, monkeypatch):
    """Makes in-process test clients of the API (``create_app``) on the session database and this test's
    Redis namespace; keyword arguments set monitoring.* keys, ``redis_url_`` another Redis."""
    import falcon.testing

    from tds_daemon.api.app import create_app
    from tds_daemon.config import load

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    def make(redis_url_=redis_url, **monitoring):
        settings = {"TDS_DATABASE_URL": pg_url, "TDS_REDIS_URL": redis_url_, "TDS_REDIS_NAMESPACE": own_namespace,
                    "TDS_REDIS_SOCKET_TIMEOUT_S": "1", "TDS_API_ADMIN_TOKEN": ADMIN_TOKEN}
        settings.update({f"TDS_MONITORING_{k.upper()}": str(v) for k, v in monitoring.items()})
        return falcon.testing.TestClient(create_app(load(environ=settings), engine=engine))

    return make


@pytest.fixture
def tds(pull_env):
    from support.pull import Tds

    t = Tds(pull_env)
    yield t
    t.close()


# --- the quick suite ------------------------------------------------------------------------------------

PROCESS_FIXTURES = {"processes", "module_processes"}

# The files that keep a test process busy longest (``pytest --durations=0``, summed per file), longest first.
# ``make test`` hands files to its processes in collection order (``--no-loadscope-reorder``): starting these
# first lets the many short files fill in around them, so all the processes finish at about the same time.
# A file missing here only runs later; the order needs updating when a file's time changes a lot.
LONGEST_FIRST = (
    "test_sync.py", "test_supervisor.py", "test_faults.py", "test_detail.py", "test_events_cli.py",
    "test_migrate.py", "test_budget.py", "test_simulator.py", "test_dlq.py", "test_breakers.py",
    "test_webhooks.py", "test_dashboard.py", "test_events_daemon.py", "test_trace.py", "test_intake_first.py",
    "test_images.py", "test_stock_specific.py", "test_monitoring.py",
)


def pytest_collection_modifyitems(config, items):
    """Marks ``daemon`` every test that starts processes (a daemon, an API, the simulator, a browser's site)
    through the process fixtures, directly or through another fixture: ``make test-quick`` leaves them out.
    Puts the longest files first (``LONGEST_FIRST``), each file's tests in their own order."""
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.daemon)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
