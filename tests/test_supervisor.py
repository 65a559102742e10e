"""``tds run`` as systemd sees it: notify protocol, restarts, giving up, reload and drain.

Real processes throughout: the supervisor, gunicorn, the worker processes, PostgreSQL and Redis;
systemd's end of NOTIFY_SOCKET is ``NotifyListener``.
"""

from __future__ import annotations

import os
import signal
import threading

import httpx
import pytest
import support
from sqlalchemy import text
from support import (
    ADMIN_TOKEN,
    TWO_OF_EACH,
    WEBHOOK_TOKEN,
    all_applied,
    applies_blocked,
    holds_for,
    queue_counts,
    wait_until,
    web,
)
from support.notify_listener import NotifyListener
from support.zoho_objects import default_payload, make_object


def start_daemon(procs, env, **overrides):
    """A daemon of two API and two worker processes: this module's tests are about several of them."""
    return support.start_daemon(procs, {**env, **TWO_OF_EACH}, **overrides)


pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def listener(tmp_path):
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (gunicorn's workers too), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().split(")")[-1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def product() -> dict:
    return default_payload("product", make_object("product"))


def metric(daemon, name: str, **labels: str) -> float:
    lines = web.get(f"{daemon.base_url}/metrics", timeout=5).text.splitlines()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in lines:
        if line.startswith(f"{name}{{{want}}}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_ready_status_watchdog_then_stopping_and_no_child_left(processes, clean_db, migrated, listener):
    daemon = start_daemon(processes, migrated, NOTIFY_SOCKET=listener.path, WATCHDOG_USEC="2000000")
    wait_until(lambda: listener.count("READY", "1"), 30, message="READY=1")
    # READY came only once the API answered and every worker consumed.
    assert web.get(f"{daemon.base_url}/health/live", timeout=5).status_code == 200
    statuses = listener.statuses()
    assert statuses[0] == "starting"
    wait_until(lambda: any(s.startswith("running: api on") for s in listener.statuses()), 10,
               message="a running STATUS")
    # WATCHDOG=1 at half of WATCHDOG_USEC (2 s here): about every second, never a gap systemd would
    # take for a hang.
    wait_until(lambda: listener.count("WATCHDOG", "1") >= 5, 15, message="five watchdog pings")
    pings = [t for t, _ in listener.with_key("WATCHDOG")]
    gaps = sorted(b - a for a, b in zip(pings, pings[1:], strict=False))
    assert 0.8 <= gaps[len(gaps) // 2] <= 1.5, gaps
    assert gaps[-1] < 2.0, gaps

    tree = descendants(daemon.proc.pid)
    assert len(tree) >= 5  # gunicorn master + 2 gunicorn workers + 2 worker processes
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=60) == 0, daemon.output()
    assert listener.count("STOPPING", "1") == 1
    assert not [p for p in tree if alive(p)], "children outlived tds run"
    assert "stopped" in daemon.output(tail=None)


def test_a_killed_worker_is_replaced_and_counted(processes, clean_db, migrated):
    daemon = start_daemon(processes, migrated)
    victim = daemon.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: (p := daemon.worker_pids()) and len(p) == 2 and victim not in p, 20,
               message="a new worker process")
    restarted = wait_until(lambda: sum(metric(daemon, "tds_child_restarts_total", child=f"worker-{i}")
                                       for i in (1, 2)), 10, message="the restart counted")
    assert restarted == 1
    assert f"pid={victim} killed by signal SIGKILL; restarting" in daemon.output(tail=None)
    # and the replacement does its job
    assert daemon.post("items", product()).status_code == 202
    wait_until(lambda: all_applied(clean_db, 1), 20, message="the webhook applied by the new worker")


def nice_of(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])


def test_workers_give_the_cpu_to_the_api_by_workers_nice(processes, clean_db, migrated):
    daemon = start_daemon(processes, migrated, TDS_WORKERS_NICE="7")
    base = nice_of(daemon.proc.pid)
    api = [p for p in daemon.children() if p not in daemon.worker_pids()]
    assert api and all(nice_of(p) == base for p in api)
    # A worker lowers its priority once its Python has started, which may be after the API is ready.
    wait_until(lambda: (w := daemon.worker_pids()) and all(nice_of(p) == min(19, base + 7) for p in w), 30,
               message="every worker process at nice +7")
    assert daemon.post("items", product()).status_code == 202
    wait_until(lambda: all_applied(clean_db, 1), 20, message="the webhook applied by a niced worker")


def test_a_crash_loop_makes_the_supervisor_give_up_and_say_why(processes, clean_db, migrated, listener):
    daemon = start_daemon(processes, migrated, NOTIFY_SOCKET=listener.path, TDS_SUPERVISOR_MAX_RESTARTS="2",
                          TDS_WORKERS_PROCESSES="1")
    tree = descendants(daemon.proc.pid)
    killed: list[int] = []

    def live_worker():
        # not one already killed (ps still lists it until the supervisor reaps it)
        return [p for p in daemon.worker_pids() if p not in killed and alive(p)] or daemon.proc.poll() is not None

    while daemon.proc.poll() is None and len(killed) < 5:
        pids = wait_until(live_worker, 30, message="a worker to kill")
        if daemon.proc.poll() is not None:
            break
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])
        wait_until(lambda p=pids[0]: not alive(p), 10, message="the worker to die")
    assert daemon.proc.wait(timeout=60) != 0, daemon.output()
    assert len(killed) == 3  # two restarts allowed, the third death is one too many
    out = daemon.output(tail=None)
    assert "worker-1 killed by signal SIGKILL; it was restarted 2 times in the last 60 s" in out
    assert "giving up" in out
    assert any("giving up" in s for s in listener.statuses())
    assert not [p for p in tree + descendants(daemon.proc.pid) if alive(p)]


class Traffic:
    """Webhooks on fresh connections, one after another, until stopped; every answer is kept."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = web.post(f"{self.base_url}/api/tds/webhooks/items", json=product(),
                               headers={"X-TDS-Webhook-Token": WEBHOOK_TOKEN, "Connection": "close"}, timeout=10)
                self.answers.append(r.status_code)
            except httpx.HTTPError as e:
                self.answers.append(type(e).__name__)
            self._stop.wait(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=20)


def test_reload_refuses_a_bad_file_and_applies_a_good_one_under_traffic(processes, clean_db, migrated, listener,
                                                                         tmp_path):
    config = tmp_path / "tds.toml"
    config.write_text("[workers]\nmax_attempts = 9\n")
    daemon = start_daemon(processes, migrated, NOTIFY_SOCKET=listener.path, TDS_CONFIG=str(config))
    wait_until(lambda: listener.count("READY", "1"), 30, message="READY=1")
    workers_before = set(daemon.worker_pids())

    with Traffic(daemon.base_url) as traffic:
        wait_until(lambda: len(traffic.answers) > 20, 20, message="traffic flowing")

        config.write_text("[supervisor]\ndrain_timeout_s = -1\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: listener.count("READY", "1") == 2, 30, message="READY=1 after the refused reload")
        assert listener.count("RELOADING", "1") == 1
        assert int(listener.with_key("RELOADING")[0][1]["MONOTONIC_USEC"]) > 0
        wait_until(lambda: any("reload refused: supervisor.drain_timeout_s" in s for s in listener.statuses()),
                   10, message="the refusal in STATUS")
        assert set(daemon.worker_pids()) == workers_before  # the old configuration stays in force
        assert "configuration reload refused: supervisor.drain_timeout_s: must be between 1 and 3600" \
            in daemon.output(tail=None)
        with clean_db.connect() as c:
            alert = c.execute(text("SELECT severity, message, count, resolved_at FROM tds_alerts "
                                   "WHERE type = 'config_reload_refused'")).one()
        assert alert.severity == "warning" and alert.resolved_at is None
        assert "supervisor.drain_timeout_s: must be between 1 and 3600" in alert.message

        config.write_text("[workers]\nmax_attempts = 7\n[supervisor]\ndrain_timeout_s = 20\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: listener.count("READY", "1") == 3, 90, message="READY=1 after the good reload")
        n = len(traffic.answers)
        wait_until(lambda: len(traffic.answers) > n + 20, 20, message="traffic after the reload")

    workers_after = set(daemon.worker_pids())
    assert len(workers_after) == 2 and not workers_after & workers_before, "every worker replaced"
    assert "configuration reloaded" in daemon.output(tail=None)
    bad = [a for a in traffic.answers if a != 202]
    assert not bad, f"{len(bad)} of {len(traffic.answers)} webhooks not accepted: {bad[:10]}"
    accepted = len(traffic.answers)
    wait_until(lambda: all_applied(clean_db, accepted), 60, message="every accepted webhook applied")
    assert metric(daemon, "tds_config_reloads_total", outcome="refused") == 1
    with clean_db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tds_alerts WHERE type = 'config_reload_refused' "
                              "AND resolved_at IS NOT NULL")).scalar() == 1, "the alert resolved by the good reload"
    assert metric(daemon, "tds_config_reloads_total", outcome="applied") == 1


def test_drain_finishes_in_flight_messages_and_loses_nothing(processes, clean_db, migrated):
    daemon = start_daemon(processes, migrated)
    held = make_object("product")
    assert daemon.post("items", default_payload("product", held)).status_code == 202
    wait_until(lambda: all_applied(clean_db, 1), 20, message="the first version applied")
    with clean_db.connect() as locker:
        # A row lock held by the test keeps the updates of that product in flight until after the stop
        # signal; lock_timeout (7.5 s here) is longer than the hold.
        tx = locker.begin()
        locker.execute(text("SELECT 1 FROM zoho.products WHERE zoho_id = :id FOR UPDATE"), {"id": held["item_id"]})
        for minutes in (1, 2):
            update = make_object("product", held["item_id"], minutes=minutes)
            assert daemon.post("items", default_payload("product", update)).status_code == 202
        accepted = 3
        for _ in range(100):
            accepted += daemon.post("items", product()).status_code == 202
        wait_until(lambda: applies_blocked(clean_db) >= 1, 20, message="an item in flight")
        daemon.proc.send_signal(signal.SIGTERM)

        def api_gone() -> bool:
            try:
                web.get(f"{daemon.base_url}/health/live", timeout=1)
                return False
            except httpx.HTTPError:
                return True

        wait_until(api_gone, 30, message="the API to stop accepting")
        assert daemon.proc.poll() is None, "tds run did not wait for the in-flight messages"
        tx.rollback()
    assert daemon.proc.wait(timeout=60) == 0, daemon.output()
    counts = queue_counts(clean_db)
    assert sum(counts.values()) == accepted == 103
    assert counts.get("processing", 0) == 0, f"a message was cut off mid-apply: {counts}"
    with clean_db.connect() as c:
        row = c.execute(text("SELECT raw->>'last_modified_time' FROM zoho.products WHERE zoho_id = :id"),
                        {"id": held["item_id"]}).scalar()
    assert row == make_object("product", held["item_id"], minutes=2)["last_modified_time"]
    # What the drain did not reach waits in PostgreSQL; the next start applies it.
    start_daemon(processes, migrated)
    wait_until(lambda: all_applied(clean_db, accepted), 60, message="every accepted webhook applied")


def test_two_daemons_one_scheduler_leader_and_failover(processes, clean_db, migrated):
    jobs_off = {f"TDS_SCHEDULER_{job}": "off" for job in
                ("FULL_SYNC", "INCREMENTAL_SYNC", "STOCK_SYNC", "HEALING", "STATISTICS")}
    env = {**migrated, "TDS_SCHEDULER_ENABLED": "true", "TDS_SCHEDULER_LEASE_S": "5", **jobs_off}
    first, second = start_daemon(processes, env), start_daemon(processes, env)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def leader_pid(daemon) -> int | None:
        leader = web.get(f"{daemon.base_url}/api/tds/monitoring/scheduler/jobs", headers=admin,
                           timeout=5).json()["leader"]
        return int(leader.split(":")[1]) if leader else None

    leading = wait_until(lambda: leader_pid(first), 20, message="a scheduler leader")
    assert leading in (first.proc.pid, second.proc.pid)
    assert leader_pid(second) == leading  # both APIs see the same single leader
    leader, follower = (first, second) if leading == first.proc.pid else (second, first)
    # The follower stays a follower while the leader renews (two lease periods).
    assert holds_for(lambda: leader_pid(follower) == leader.proc.pid, 10, interval=0.5), "the follower took over"

    orphans = descendants(leader.proc.pid)
    leader.proc.send_signal(signal.SIGKILL)  # dies without releasing its lease
    leader.proc.wait(timeout=10)
    took_over = wait_until(lambda: leader_pid(follower) == follower.proc.pid, 5 + 5,
                           message="the follower to take over within the lease time")
    assert took_over
    # Its API and workers stop too (they are told when their parent dies): none goes on unsupervised.
    wait_until(lambda: not [p for p in orphans if alive(p)], 40, message="the killed daemon's processes gone")


def test_a_second_stop_signal_forces_without_waiting(processes, clean_db, migrated):
    daemon = start_daemon(processes, migrated, TDS_SUPERVISOR_DRAIN_TIMEOUT_S="120")
    held = make_object("product")
    assert daemon.post("items", default_payload("product", held)).status_code == 202
    wait_until(lambda: all_applied(clean_db, 1), 20, message="the first version applied")
    tree = descendants(daemon.proc.pid)
    with clean_db.connect() as locker:
        tx = locker.begin()
        locker.execute(text("SELECT 1 FROM zoho.products WHERE zoho_id = :id FOR UPDATE"), {"id": held["item_id"]})
        update = make_object("product", held["item_id"], minutes=1)
        assert daemon.post("items", default_payload("product", update)).status_code == 202
        wait_until(lambda: applies_blocked(clean_db) == 1, 20, message="an item in flight")
        daemon.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping: draining" in daemon.output(), 20, message="the drain to start")
        daemon.proc.send_signal(signal.SIGTERM)
        # The lock is still held: only a forced stop can end it now.
        assert daemon.proc.wait(timeout=20) == 1, daemon.output()
        tx.rollback()
    assert "stopped by force" in daemon.output()
    wait_until(lambda: not [p for p in tree if alive(p)], 10, message="every child gone")
    # The cut-off item is still in PostgreSQL; the next start applies it.
    start_daemon(processes, migrated)
    wait_until(lambda: all_applied(clean_db, 2), 60, message="the cut-off item applied after a restart")
