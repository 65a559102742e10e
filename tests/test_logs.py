"""Log lines: each names its process's role and pid, a summary is key=value pairs, httpx stays quiet."""

from __future__ import annotations

import logging
import re

from support import ADMIN_TOKEN, TWO_OF_EACH, start_daemon, wait_until, web
from support.zoho_objects import default_payload, make_object

from tds_daemon import logs

LINE = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR|DEBUG) (?P<role>[\w-]+)\[(?P<pid>\d+)\] \S+: ")
OFF = {f"TDS_SCHEDULER_{job.upper()}": "off" for job in ("full_sync", "incremental_sync", "incremental_sync_warm",
                                                          "stock_sync", "healing", "statistics", "detail_backfill")}


def record(msg: str, *args, thread: str = "MainThread") -> logging.LogRecord:
    r = logging.LogRecord("tds_daemon.pull.pulls", logging.INFO, __file__, 1, msg, args, None)
    r.threadName = thread
    return r


def test_summaries_are_key_value_pairs_and_the_role_is_named():
    logs.setup("INFO", "worker-2")
    f = logs.Formatter()
    line = f.format(record("sync run %s succeeded: entity=%s kind=%s %s", 7, "product", "full",
                           {"created": 3, "updated": 0, "error": "a b"}))
    assert re.search(r" INFO worker-2\[\d+\] tds_daemon\.pull\.pulls: ", line), line
    assert line.endswith("sync run 7 succeeded: entity=product kind=full created=3 updated=0 error='a b'")
    line = f.format(record("healer run %s: redispatched %s, queue %s", 1, {"lost": 2, "expired": 0}, {}))
    assert line.endswith("healer run 1: redispatched lost=2 expired=0, queue -")
    assert f.format(record("job done: %s", {"job": "healing", "report": {"runs": 1}})).endswith(
        "job done: job=healing report.runs=1")
    assert f.format(record("named %(a)s", {"a": 1})).endswith("named 1")  # a mapping used by name stays one
    assert " scheduler[" in f.format(record("lease acquired", thread="tds-scheduler-lease"))
    for name in ("httpx", "httpcore"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)


def test_the_daemon_names_every_process_by_its_role(processes, migrated, clean_db):
    d = start_daemon(processes, {**migrated, **TWO_OF_EACH}, TDS_SCHEDULER_ENABLED="true", **OFF)
    obj = make_object("product")
    assert d.post("items", default_payload("product", obj)).status_code == 202
    r = d.http.post("/api/tds/auto-healing/run", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text

    def roles() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for line in d.output(tail=None).splitlines():
            m = LINE.match(line)
            if m:
                seen.setdefault(m["role"], set()).add(m["pid"])
        return seen

    # every role has logged: the supervisor, its scheduler thread, gunicorn's master and workers, the workers
    wanted = {"supervisor", "scheduler", "api", "worker-1", "worker-2"}
    seen = wait_until(lambda: (lambda s: s if wanted <= set(s) and {"api-1", "api-2"} & set(s) else None)(roles()),
                      20, message="a line from every role")
    wait_until(lambda: "applied: entity=product" in d.output(tail=None), 20, message="the webhook applied")
    out = d.output(tail=None)
    assert "MainProcess[" not in out, out[-3000:]
    assert seen["supervisor"] == seen["scheduler"] and len(seen["supervisor"]) == 1  # one process, two roles
    assert seen["worker-1"] != seen["worker-2"] and seen["supervisor"] != seen["api"]
    # The run the API was asked for (the scheduler may have run one in a worker as well).
    healer = next(line for line in out.splitlines() if " healer run " in line and " (api): " in line)
    assert re.search(r" api-\d\[\d+\] ", healer) and "{" not in healer and "redispatched " in healer, healer
    assert "HTTP Request:" not in out  # httpx's per-request lines
    with web.Client() as client:  # nothing is left out of the line format
        assert client.get(f"{d.base_url}/health/live").status_code == 200
    assert all(LINE.match(line) or not line[:4].isdigit() for line in d.output(tail=None).splitlines())
