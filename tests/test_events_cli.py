"""``tds events tail`` and ``tds events replay``, run as the operator runs them (the real command, a real
PostgreSQL): events after a cursor and filtered, ``--follow`` woken by a commit and ended by a signal, dead
letters listed and marked for replay, and one line when the database does not answer."""

from __future__ import annotations

import base64
import datetime as dt
import json
import signal
import subprocess

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from support import ROOT, TDS, free_port, wait_until
from support.tcp_proxy import TcpProxy
from support.zoho_objects import make_object

from tds_daemon import entities
from tds_daemon.apply import upsert
from tds_daemon.pull import runs

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
ERP = "https://erp:erp-pass@erp.example.com/hooks?token=tok-123"


def tds(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*TDS, "events", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def write(engine, entity: str, n: int = 1, source: str = "webhook") -> list[str]:
    """``n`` new rows of ``entity``, through the one upsert: one event each, committed together."""
    objs = [make_object(entity) for _ in range(n)]
    with engine.begin() as conn:
        upsert.apply(conn, entities.get(entity), "zoho", [upsert.Change(o, dt.datetime.now(dt.UTC)) for o in objs],
                     source=source)
    return [o[entities.get(entity).id_field] for o in objs]


def run_ended(engine, run_id: int) -> None:
    with engine.begin() as conn:
        runs.completed(conn, run_id, "product", "full", "succeeded", {"created": 3, "updated": 0}, None)


def ids(out: str) -> list[int]:
    return [int(line.split()[0]) for line in out.splitlines()]


def one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("tds: "), r.stderr
    return r.stderr.strip()


def test_tail_prints_the_last_events_or_those_after_a_cursor_filtered(env, engine):
    products = write(engine, "product", 3)
    [customer] = write(engine, "customer", source="pull")
    run_ended(engine, 41)
    more = write(engine, "product", 25)  # ids 6 to 30

    r = tds(env, "tail")
    assert r.returncode == 0, r.stderr
    assert ids(r.stdout) == list(range(11, 31)), r.stdout  # the last 20, oldest first
    last = r.stdout.splitlines()[-1].split()
    assert last[3:7] == ["entity.synced", "product", more[-1], "created"] and last[-2:] == ["by", "webhook"]

    r = tds(env, "tail", "--after", "0", "--limit", "5")
    assert ids(r.stdout) == [1, 2, 3, 4, 5]
    assert r.stdout.splitlines()[0].split()[5] == products[0]
    assert r.stderr.strip() == "tds: more events after 5: tds events tail --after 5"

    r = tds(env, "tail", "--after", "2", "--entity", "contacts")  # an alias
    assert r.returncode == 0, r.stderr
    [line] = r.stdout.splitlines()
    assert line.split()[:1] == ["4"] and f"customer          {customer}" in line and line.endswith("created by pull")

    r = tds(env, "tail", "--type", "sync.completed")
    [line] = r.stdout.splitlines()
    assert line.split()[0] == "5" and line.endswith("full pull, run 41: succeeded (created 3)")

    r = tds(env, "tail", "--after", "28", "--json")
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e["id"] for e in events] == [29, 30] and r.stderr == ""
    assert events[0]["type"] == "tds.zoho.entity.synced" and events[0]["data"]["zoho_id"] == more[-2]
    assert events[0]["timestamp"] and events[0]["data"]["changed"]

    r = tds(env, "tail", "--after", "30")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert "no entity 'widgets'" in one_line(tds(env, "tail", "--entity", "widgets"))
    assert "no event type 'synced'" in one_line(tds(env, "tail", "--type", "synced"))
    assert "--limit must be at least 1" in one_line(tds(env, "tail", "--limit", "0"))


def listening(engine) -> int:
    """Connections of ``tds events`` listening on the outbox's channel."""
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND application_name = 'tds-events' AND query = 'LISTEN tds_events'")).scalar_one()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_follow_prints_each_event_as_it_is_committed_and_a_signal_ends_it(env, engine, processes, sig):
    write(engine, "product", 2)
    proc = processes.start("tail", [*TDS, "events", "tail", "--follow", "--limit", "1", "--entity", "invoice"],
                           env=env, ready=lambda: listening(engine) == 1, timeout=20)
    assert processes.output(proc) == ""  # no invoice yet; the products are not for this filter

    [invoice] = write(engine, "invoice")
    write(engine, "product")
    [line] = wait_until(lambda: processes.output(proc).splitlines(), 8, message="the invoice's event printed")
    assert line.split()[:1] == ["3"] and invoice in line
    [second] = write(engine, "invoice")
    wait_until(lambda: second in processes.output(proc), 8, message="the second invoice's event printed")

    assert processes.stop(proc, sig, timeout=10) == 0
    out = processes.output(proc)
    assert "Traceback" not in out and len(out.splitlines()) == 2, out
    wait_until(lambda: listening(engine) == 0, 5, message="the listening connection closed")


def test_follow_starts_with_the_last_events_and_after_a_cursor_prints_everything(env, engine, processes):
    write(engine, "product", 5)
    proc = processes.start("tail", [*TDS, "events", "tail", "-f", "--after", "1", "--limit", "2", "--json"],
                           env=env, ready=lambda: listening(engine) == 1, timeout=20)
    wait_until(lambda: len(processes.output(proc).splitlines()) == 4, 8, message="events 2 to 5 printed")
    assert [json.loads(x)["id"] for x in processes.output(proc).splitlines()] == [2, 3, 4, 5]
    assert processes.stop(proc, signal.SIGTERM, timeout=10) == 0


def configured(tmp_path, env) -> dict:
    """``env`` with a configuration file declaring two subscribers (the ERP's URL holds a password and a token)."""
    path = tmp_path / "tds.toml"
    path.write_text(f'[[events.subscribers]]\nurl = "{ERP}"\nsecret = "{SECRET}"\nname = "erp"\n'
                    f'[[events.subscribers]]\nurl = "http://127.0.0.1:9/shop"\nsecret = "{SECRET}"\n')
    return {**env, "TDS_CONFIG": str(path)}


def dead_letter(engine, url: str, event_id: int, error: str = "HTTP 503") -> None:
    with engine.begin() as c:
        c.execute(text("INSERT INTO tds_event_dead_letters (url, event_id, attempts, first_failed_at, failed_at, "
                       "last_error) VALUES (:u, :e, 14, now() - interval '3 days', now() - interval '1 hour', :err)"),
                  {"u": url, "e": event_id, "err": error})


def replay_asked(engine) -> dict[tuple[str, int], bool]:
    with engine.connect() as c:
        return {(u, e): asked for u, e, asked in c.execute(text(
            "SELECT url, event_id, replay_requested_at IS NOT NULL FROM tds_event_dead_letters"))}


def test_replay_lists_dead_letters_and_marks_them_for_replay(env, engine, tmp_path):
    env = configured(tmp_path, env)
    gone = "https://old:old-pass@gone.example/hook"
    for event_id in (7, 9):
        dead_letter(engine, ERP, event_id)
    dead_letter(engine, "http://127.0.0.1:9/shop", 9, "no answer: ConnectError: connection refused")
    dead_letter(engine, gone, 3)

    r = tds(env, "replay", "--list")
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split()[:4] == ["subscriber", "event", "tries", "first"]
    # A configured subscriber by its name or host alone; one no longer configured by its URL, password masked.
    assert [row.split()[0] for row in rows] == ["erp", "erp", "http://127.0.0.1:9",
                                                "https://old:***@gone.example/hook"]
    assert rows[0].split()[1:3] == ["7", "14"] and rows[0].endswith("HTTP 503")
    assert rows[2].endswith("no answer: ConnectError: connection refused") and "(not configured)" in rows[3]
    for secret in (SECRET, "erp-pass", "tok-123", "old-pass"):
        assert secret not in r.stdout + r.stderr
    r = tds(env, "replay", "--list", "--subscriber", "erp", "--event", "9")
    assert [row.split()[:2] for row in r.stdout.splitlines()[1:]] == [["erp", "9"]]

    r = tds(env, "replay", "--subscriber", "erp", "--event", "9")  # by its name
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("1 dead letter(s) of erp (event 9) marked for replay: tds run pushes them again, "
                                "oldest first")
    assert replay_asked(engine) == {(ERP, 7): False, (ERP, 9): True, ("http://127.0.0.1:9/shop", 9): False,
                                    (gone, 3): False}
    assert "(replay asked " in tds(env, "replay", "--list", "--subscriber", ERP).stdout.splitlines()[2]

    r = tds(env, "replay", "--subscriber", ERP)  # by its URL: the one not asked for yet
    assert r.stdout.startswith("1 dead letter(s) of erp marked for replay")
    r = tds(env, "replay", "--subscriber", ERP)
    assert r.returncode == 0 and r.stdout.startswith("no dead letters to replay: erp has none")

    r = tds(env, "replay", "--subscriber", gone)  # not configured, but it has dead letters
    assert r.returncode == 0 and "https://old:***@gone.example/hook is not configured" in r.stdout
    assert "old-pass" not in r.stdout
    assert "--all" in one_line(tds(env, "replay"))  # every dead letter only when said
    r = tds(env, "replay", "--all")  # every subscriber: what is left
    assert r.stdout.startswith("1 dead letter(s) of every subscriber marked")
    assert all(replay_asked(engine).values())

    line = one_line(tds(env, "replay", "--subscriber", "https://nobody:pw@nowhere.example/x"))
    assert "no subscriber 'https://nobody:***@nowhere.example/x' is configured and it has no dead letters" in line
    assert "configured: erp, http://127.0.0.1:9;" in line and ":pw@" not in line
    assert "--event takes an event id" in one_line(tds(env, "replay", "--event", "0"))


def test_database_unreachable_is_one_line_and_exit_1(migrated):
    env = {**migrated, "TDS_DATABASE_URL": f"postgresql+psycopg2://127.0.0.1:{free_port()}/nowhere"}
    for args in (["tail"], ["tail", "--follow"], ["replay", "--list"], ["replay", "--subscriber", "x"]):
        line = one_line(tds(env, *args))
        assert line.startswith("tds: cannot connect to PostgreSQL at "), (args, line)


def test_follow_ends_in_one_line_when_the_database_goes_away(env, engine, processes, pg_url):
    with TcpProxy("127.0.0.1", make_url(pg_url).port or 5432) as proxy:
        proxied = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
        proc = processes.start("tail", [*TDS, "events", "tail", "--follow"], env={**env, "TDS_DATABASE_URL": proxied},
                               ready=lambda: listening(engine) == 1, timeout=20)
        proxy.stop()
        wait_until(lambda: proc.poll() is not None, 10, message="tail to end")
    out = processes.output(proc)
    assert proc.returncode == 1 and out.startswith("tds: cannot read the database: ") and "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
