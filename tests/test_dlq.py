"""The dead-letter queue: ``tds dlq list|replay`` and ``/api/tds/dead-letter``.

Listing and the replay bookkeeping are tested against rows inserted directly, with the API in this
process (its own Redis namespace, so no worker consumes what it sends). The last test produces real
dead letters through a running ``tds run`` and replays them until they are applied.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import text
from support import ADMIN_TOKEN, ROOT, TDS, WEBHOOK_TOKEN, free_port, queue_counts, start_daemon, wait_until
from support.db import Sql, add_items
from support.zoho_objects import default_payload, make_object, new_id

from tds_daemon.care import dlq

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIST = "/api/tds/dead-letter"
REPLAY = "/api/tds/dead-letter/replay"


def tds(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*TDS, "dlq", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def item(engine, item_id: int) -> dict:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT * FROM tds_sync_queue WHERE id = :id"), {"id": item_id}).mappings().one())


def replay(client, body) -> dict:
    r = client.simulate_post(REPLAY, json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json


# ---------------------------------------------------------------------------------------------- listing

def test_list_shows_code_message_attempts_and_failures(api, clean_db, migrated):
    client = api()
    old = add_items(clean_db, "dead_letter", entity="product", attempt_count=10, error_code="retries_exhausted",
                    error_message="gave up after 10 attempts; last error: OperationalError: timeout",
                    first_failed_at=Sql("now() - interval '2 hours'"),
                    last_failed_at=Sql("now() - interval '1 hour'"))[0]
    new = add_items(clean_db, "dead_letter", entity="product")[0]
    invoice = add_items(clean_db, "dead_letter", entity="invoice", error_message="total: 'abc' is not a number")[0]
    add_items(clean_db, "completed")
    add_items(clean_db, "failed")

    assert client.simulate_get(LIST).status_code == 401
    r = client.simulate_get(LIST, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json["total"] == 3
    assert [i["id"] for i in r.json["items"]][-1] == old  # the most recent failures first
    first = next(i for i in r.json["items"] if i["id"] == old)
    assert set(first) == set(dlq.ITEM_FIELDS)
    assert first["entity"] == "product" and first["attempts"] == 10 and first["error_code"] == "retries_exhausted"
    assert first["error_message"].startswith("gave up after 10 attempts")
    assert first["first_failed_at"] < first["last_failed_at"] and first["event_id"] and first["zoho_id"]

    by_alias = client.simulate_get(LIST, params={"entity": "items"}, headers=ADMIN).json
    assert by_alias["total"] == 2 and {i["id"] for i in by_alias["items"]} == {old, new}
    page = client.simulate_get(LIST, params={"limit": "1"}, headers=ADMIN).json
    assert page["total"] == 3 and len(page["items"]) == 1
    unknown = client.simulate_get(LIST, params={"entity": "widgets"}, headers=ADMIN)
    assert unknown.status_code == 400 and unknown.json["error"] == "unknown_entity"

    out = tds(migrated, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["id", "entity", "zoho_id", "tries", "first"]
    at = next(n for n, line in enumerate(lines) if line.split()[0] == str(old))
    assert " 10 " in lines[at] and lines[at].endswith("retries_exhausted")
    assert lines[at + 1].strip() == "gave up after 10 attempts; last error: OperationalError: timeout"
    at = next(n for n, line in enumerate(lines) if line.split()[0] == str(invoice))
    assert lines[at].endswith("invalid_field") and lines[at + 1].strip() == "total: 'abc' is not a number"
    assert lines[-1].startswith("3 dead letter(s);")

    out = tds(migrated, "list", "--entity", "product", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["total"] == 2
    out = tds(migrated, "list", "--limit", "1")
    assert "3 dead letter(s), showing the 1 most recent" in out.stdout
    out = tds(migrated, "list", "--entity", "widgets")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("tds: dlq list: no entity type 'widgets'") and out.stderr.count("\n") == 1

    with clean_db.begin() as c:
        c.execute(text("UPDATE tds_sync_queue SET status = 'completed' WHERE status = 'dead_letter'"))
    assert tds(migrated, "list").stdout.strip() == "no dead letters"
    assert client.simulate_get(LIST, headers=ADMIN).json == {"items": [], "total": 0}


def test_list_shows_the_whole_message_and_narrows_to_one_object(api, clean_db, migrated):
    client = api()
    long = ("invalid_field: rate: 'twelve and a half' is not a number; " * 6 + "fix the item in Zoho, then replay it "
            "with tds dlq replay --id").strip()
    target = add_items(clean_db, "dead_letter", entity="product", error_message=long)[0]
    other = add_items(clean_db, "dead_letter", entity="product")[0]
    zoho_id = item(clean_db, target)["zoho_id"]

    out = tds({**migrated, "COLUMNS": "80"}, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = next(n for n, line in enumerate(lines) if line.split()[0] == str(target))
    message = []
    for line in lines[at + 1:]:
        if not line.startswith(" " * 10):
            break
        assert len(line) <= 80, line
        message.append(line.strip())
    assert " ".join(message) == long  # wrapped, never cut

    r = client.simulate_get(LIST, params={"zoho_id": zoho_id}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json["total"] == 1 and [i["id"] for i in r.json["items"]] == [target]
    assert r.json["items"][0]["error_message"] == long
    none = client.simulate_get(LIST, params={"zoho_id": zoho_id, "entity": "invoice"}, headers=ADMIN).json
    assert none == {"items": [], "total": 0}

    out = tds(migrated, "list", "--zoho-id", zoho_id)
    assert out.returncode == 0, out.stderr
    ids = [line.split()[0] for line in out.stdout.splitlines()[2:-1] if not line.startswith(" " * 10)]
    assert ids == [str(target)] and str(other) not in ids
    assert out.stdout.splitlines()[-1].startswith(f"1 dead letter(s) with zoho_id {zoho_id};")
    out = tds(migrated, "list", "--zoho-id", "nosuch", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == {"items": [], "total": 0}
    assert tds(migrated, "list", "--zoho-id", "nosuch").stdout.strip() == "no dead letters with zoho_id nosuch"


# ---------------------------------------------------------------------------------------------- replay bookkeeping

def test_replay_moves_dead_letters_back_once(api, clean_db):
    client = api()
    p1, p2 = add_items(clean_db, "dead_letter", 2, entity="product", attempt_count=3)
    inv = add_items(clean_db, "dead_letter", entity="invoice")[0]
    before = item(clean_db, p1)

    assert replay(client, {"ids": [p1]}) == {"replayed": 1, "skipped": 0}
    after = item(clean_db, p1)
    assert after["status"] == "pending" and after["attempt_count"] == 3  # attempts are not reset
    assert (after["error_code"], after["error_message"]) == (before["error_code"], before["error_message"])
    assert after["first_failed_at"] == before["first_failed_at"] and after["last_failed_at"] == before["last_failed_at"]
    assert after["next_attempt_at"] and after["dispatched_at"]  # the message was sent
    assert replay(client, {"ids": [p1]}) == {"replayed": 0, "skipped": 1}  # twice is a no-op

    assert replay(client, {"entity": "products"}) == {"replayed": 1, "skipped": 0}
    assert item(clean_db, p2)["status"] == "pending" and item(clean_db, inv)["status"] == "dead_letter"
    assert replay(client, {"entity": "product"}) == {"replayed": 0, "skipped": 0}
    # entity narrows ids: the invoice is not a product, and p1 is no longer a dead letter
    assert replay(client, {"ids": [p1, inv], "entity": "product"}) == {"replayed": 0, "skipped": 2}

    assert replay(client, {"all": True}) == {"replayed": 1, "skipped": 0}
    assert item(clean_db, inv)["status"] == "pending"
    assert replay(client, {"all": True}) == {"replayed": 0, "skipped": 0}
    assert replay(client, {"ids": [inv, 999999]}) == {"replayed": 0, "skipped": 2}


def test_replay_with_redis_down_leaves_the_message_to_recovery(api, clean_db):
    client = api(redis_url_=f"redis://127.0.0.1:{free_port()}/0")
    dead = add_items(clean_db, "dead_letter")[0]
    assert replay(client, {"ids": [dead]}) == {"replayed": 1, "skipped": 0}
    after = item(clean_db, dead)
    # pending and never dispatched: the workers' recovery sweep sends it when Redis answers
    assert after["status"] == "pending" and after["dispatched_at"] is None


def test_bad_selectors_are_refused(api, clean_db, migrated):
    client = api()
    dead = add_items(clean_db, "dead_letter")[0]
    cases = [
        (None, 400, "no_selector"), ({}, 400, "no_selector"), ({"all": False}, 400, "no_selector"),
        ({"ids": []}, 400, "no_selector"), ([dead], 400, "no_selector"),
        ({"ids": [dead], "all": True}, 400, "conflicting_selectors"),
        ({"entity": "widgets"}, 400, "unknown_entity"), ({"entity": 5}, 400, "invalid_entity"),
        ({"ids": str(dead)}, 400, "invalid_ids"), ({"ids": [0]}, 400, "invalid_ids"),
        ({"ids": [True]}, 400, "invalid_ids"), ({"ids": ["1"]}, 400, "invalid_ids"),
        ({"all": "yes"}, 400, "invalid_all"), ({"id": dead}, 400, "unknown_field"),
    ]
    for body, status, code in cases:
        r = client.simulate_post(REPLAY, json=body, headers=ADMIN) if body is not None else \
            client.simulate_post(REPLAY, headers=ADMIN)
        assert (r.status_code, r.json.get("error")) == (status, code), (body, r.text)
        assert r.json["message"]
    r = client.simulate_post(REPLAY, body=b"{not json", headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["error"] == "invalid_json"
    assert client.simulate_post(REPLAY, json={"all": True}).status_code == 401

    for args, says in [
        ([], "tds: dlq replay: say which dead letters to replay: --id ID, --entity E or --all"),
        (["--id", str(dead), "--all"], "tds: dlq replay: --id and --all exclude each other"),
        (["--entity", "widgets", "--all"], "tds: dlq replay: no entity type 'widgets'"),
        (["--id", "0"], "tds: dlq replay: --id takes a sync item id"),
    ]:
        out = tds(migrated, "replay", *args)
        assert out.returncode == 1 and out.stdout == "", (args, out)
        assert out.stderr.startswith(says) and out.stderr.count("\n") == 1, (args, out.stderr)
    assert item(clean_db, dead)["status"] == "dead_letter"  # nothing was replayed


# ---------------------------------------------------------------------------------------------- through the daemon

def post(daemon, entity: str, obj: dict) -> None:
    r = daemon.post(entity, default_payload(entity, obj), token=WEBHOOK_TOKEN)
    assert r.status_code == 202, r.text


def item_of(engine, entity: str, zoho_id: str) -> dict:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT * FROM tds_sync_queue WHERE entity_type = :e AND zoho_id = :z"),
                              {"e": entity, "z": zoho_id}).mappings().one())


def fix(engine, item_row: dict, path: str, value: str) -> None:
    """Fix the cause: the stored delivery gets a value that converts."""
    with engine.begin() as c:
        c.execute(text("UPDATE tds_inbox_events SET payload = jsonb_set(payload, CAST(:path AS text[]), "
                       "to_jsonb(CAST(:value AS text))) WHERE id = :id"),
                  {"path": path, "value": value, "id": item_row["event_id"]})


@pytest.mark.timeout(120)
def test_real_dead_letters_replayed_until_applied(processes, clean_db, migrated):
    daemon = start_daemon(processes, migrated)
    a, b, c = new_id(), new_id(), new_id()
    post(daemon, "product", make_object("product", a, rate="abc"))
    post(daemon, "product", make_object("product", b, purchase_rate="n/a"))
    post(daemon, "invoice", make_object("invoice", c, total="abc"))
    wait_until(lambda: queue_counts(clean_db) == {"dead_letter": 3}, 30, message="three dead letters")
    ia, ib, ic = item_of(clean_db, "product", a), item_of(clean_db, "product", b), item_of(clean_db, "invoice", c)

    listing = json.loads(tds(daemon.env, "list", "--json").stdout)
    assert listing["total"] == 3
    first = next(i for i in listing["items"] if i["id"] == ia["id"])
    assert first["error_code"] == "invalid_field"
    assert "rate" in first["error_message"] and "abc" in first["error_message"], first
    assert first["attempts"] == 1 and first["first_failed_at"] == first["last_failed_at"]
    table = tds(daemon.env, "list").stdout
    lines = table.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith(f"{ia['id']:>8}  product"))
    assert lines[at].endswith("invalid_field") and lines[at + 1].strip().startswith(first["error_message"][:40])

    # Replayed before the cause is fixed: tried once more, dead again, every attempt counted.
    out = tds(daemon.env, "replay", "--id", str(ia["id"]))
    assert out.returncode == 0 and out.stdout.strip() == f"replayed 1 dead letter(s) (ids {ia['id']})", out
    again = wait_until(lambda: (i := item_of(clean_db, "product", a))["status"] == "dead_letter"
                       and i["attempt_count"] == 2 and i, 30, message="the unfixed item dead again")
    assert again["last_failed_at"] > again["first_failed_at"] == ia["first_failed_at"]

    # Fixed, then replayed by entity: both products applied.
    fix(clean_db, ia, "{item,rate}", "12.50")
    fix(clean_db, ib, "{item,purchase_rate}", "9.75")
    assert daemon.http.post("/api/tds/dead-letter/replay", json={"entity": "product"},
                            headers=ADMIN).json() == {"replayed": 2, "skipped": 0}
    wait_until(lambda: queue_counts(clean_db) == {"completed": 2, "dead_letter": 1}, 30,
               message="both products applied")
    done = item_of(clean_db, "product", a)
    assert done["attempt_count"] == 3 and done["error_code"] is None and done["outcome"] == "created"
    with clean_db.connect() as conn:
        rows = {r.zoho_id: r for r in conn.execute(text("SELECT zoho_id, rate, purchase_rate FROM zoho.products"))}
    assert set(rows) == {a, b} and float(rows[a].rate) == 12.5 and float(rows[b].purchase_rate) == 9.75

    # Replaying again is a no-op, whichever way it is asked.
    assert daemon.http.post("/api/tds/dead-letter/replay", json={"entity": "product"},
                            headers=ADMIN).json() == {"replayed": 0, "skipped": 0}
    assert daemon.http.post("/api/tds/dead-letter/replay", json={"ids": [ia["id"], ib["id"]]},
                            headers=ADMIN).json() == {"replayed": 0, "skipped": 2}
    out = tds(daemon.env, "replay", "--id", str(ia["id"]))
    assert out.returncode == 0 and "no dead letters to replay" in out.stdout and "skipped 1" in out.stdout

    fix(clean_db, ic, "{invoice,total}", "1150.00")
    out = tds(daemon.env, "replay", "--all")
    assert out.returncode == 0 and out.stdout.startswith(f"replayed 1 dead letter(s) (ids {ic['id']})"), out
    wait_until(lambda: queue_counts(clean_db) == {"completed": 3}, 30, message="the invoice applied")
    assert daemon.http.get("/api/tds/dead-letter", headers=ADMIN).json() == {"items": [], "total": 0}
    assert tds(daemon.env, "list").stdout.strip() == "no dead letters"
