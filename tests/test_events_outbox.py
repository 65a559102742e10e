"""The outbox: every change applied writes its event in the same transaction, and only a change does.

Real PostgreSQL; rows written through the one upsert, as webhooks and pulls write them."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy import event as sa_event
from support.zoho_objects import make_object

from tds_daemon import entities, zohovalues
from tds_daemon.apply import events, upsert
from tds_daemon.publish import feed
from tds_daemon.store.schema import events as events_table

SCHEMA = "zoho"
PRODUCT = entities.get("product")


def utc(zoho_time: str) -> str:
    return zohovalues.parse_timestamp(zoho_time).astimezone(dt.UTC).isoformat()


def write(engine, objects, *, source="webhook", deleted=False, whole=True, fail=False):
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        out = upsert.apply(conn, PRODUCT, SCHEMA, [upsert.Change(o, now, deleted=deleted, whole=whole)
                                                   for o in objects], source=source)
        if fail:
            raise RuntimeError("the transaction fails after the write")
    return out


def stored(engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(select(events_table).order_by(events_table.c.id))]


def test_a_change_has_its_event_and_a_repeat_or_stale_write_has_none(clean_db):
    obj = make_object("product", minutes=-10, name="Bolt", rate=2.5)
    assert write(clean_db, [obj]) == {obj["item_id"]: "created"}
    [created] = stored(clean_db)
    assert created["type"] == events.ENTITY_SYNCED and created["entity"] == "product"
    data = created["payload"]
    assert data["action"] == "created" and data["source"] == "webhook" and data["zoho_id"] == obj["item_id"]
    assert data["changed"]["name"] == "Bolt" and data["changed"]["rate"] == "2.5"
    assert data["last_modified_time"] == utc(obj["last_modified_time"])

    assert write(clean_db, [obj]) == {obj["item_id"]: "unchanged"}  # a duplicate delivery
    older = dict(obj, name="Old", last_modified_time=make_object("product", minutes=-20)["last_modified_time"])
    assert write(clean_db, [older]) == {obj["item_id"]: "stale"}  # a late one
    assert len(stored(clean_db)) == 1

    newer = dict(obj, name="Bolt M8", last_modified_time=make_object("product", minutes=-5)["last_modified_time"])
    assert write(clean_db, [newer], source="pull") == {obj["item_id"]: "updated"}
    updated = stored(clean_db)[-1]["payload"]
    assert (updated["action"], updated["source"], updated["changed"]) == ("updated", "pull", {"name": "Bolt M8"})

    gone = dict(newer, last_modified_time=make_object("product", minutes=-1)["last_modified_time"])
    assert write(clean_db, [gone], deleted=True) == {obj["item_id"]: "deleted"}
    assert stored(clean_db)[-1]["payload"]["action"] == "deleted"
    ids = [e["id"] for e in stored(clean_db)]
    assert ids == sorted(ids) and len(ids) == 3


def test_a_stock_refresh_has_its_event_with_the_rows_last_modified_time(clean_db):
    obj = make_object("product", minutes=-10, stock_on_hand=5)
    write(clean_db, [obj])
    with clean_db.begin() as conn:
        out = upsert.apply_stock(conn, PRODUCT, SCHEMA, [dict(obj, stock_on_hand=7), make_object("product")])
    assert sorted(out.values()) == ["missing", "updated"]
    event = stored(clean_db)[-1]["payload"]
    assert (event["action"], event["source"], event["changed"]) == ("updated", "pull", {"stock_on_hand": "7"})
    assert event["last_modified_time"] == utc(obj["last_modified_time"])
    with clean_db.begin() as conn:  # the same stock again: no change, no event
        upsert.apply_stock(conn, PRODUCT, SCHEMA, [dict(obj, stock_on_hand=7)])
    assert len(stored(clean_db)) == 2


def test_a_rolled_back_change_leaves_no_event(clean_db):
    obj = make_object("product")
    with pytest.raises(RuntimeError):
        write(clean_db, [obj], fail=True)
    assert stored(clean_db) == []
    write(clean_db, [obj])  # the same connection pool: nothing left over from the failed transaction
    assert len(stored(clean_db)) == 1


def test_each_commit_notifies_listeners_with_the_newest_id(clean_db):
    raw = clean_db.raw_connection()
    try:
        raw.set_isolation_level(0)
        cur = raw.cursor()
        cur.execute(f"LISTEN {events.CHANNEL}")
        write(clean_db, [make_object("product"), make_object("product")])
        newest = stored(clean_db)[-1]["id"]
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        import select as sel
        while not raw.notifies and dt.datetime.now() < deadline:
            if sel.select([raw], [], [], 0.5)[0]:
                raw.poll()
        assert [n.payload for n in raw.notifies] == [str(newest)]
    finally:
        raw.invalidate()  # autocommit and LISTEN must not go back to the pool the other tests share


def test_a_reader_following_the_cursor_gets_every_event_once_in_order_under_concurrent_writers(clean_db):
    """Writers commit side by side, some slowly (a pause between their events' insert and their commit, so
    that greater ids often become visible first), some rolling back, while a reader follows the cursor as
    ``GET /api/tds/events`` and ``tds events tail`` do: it gets every committed event once, in id order."""
    engine = create_engine(clean_db.url, pool_size=10, max_overflow=0)
    rng = random.Random(28)

    @sa_event.listens_for(engine, "commit")
    def slow_commit(_conn):  # runs after the outbox's own commit hook has inserted the events
        time.sleep(rng.choice((0, 0, 0, 0.002, 0.01, 0.03)))

    writers_done = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                try:
                    with engine.begin() as conn:
                        for j in range(1 + i % 3):
                            events.add(conn, events.ENTITY_SYNCED, {"n": n, "i": i, "j": j}, entity="product",
                                       zoho_id=f"{n}-{i}-{j}")
                        if i % 10 == 7:
                            raise RuntimeError("rolled back")
                except RuntimeError:
                    pass
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    seen: list[int] = []

    def reader() -> None:
        cursor, last_round = 0, False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with clean_db.connect() as conn:
                page, cursor = feed.read(conn, cursor, 25)
            seen.extend(e["id"] for e in page)
            if not page:
                if last_round:
                    return
                last_round = writers_done.wait(0.001)  # one more read after the writers are done

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    follow = threading.Thread(target=reader)
    follow.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    writers_done.set()
    follow.join(60)
    engine.dispose()
    assert not errors and not follow.is_alive()
    committed = [e["id"] for e in stored(clean_db)]
    assert len(committed) == 8 * sum(1 + i % 3 for i in range(40) if i % 10 != 7), "none rolled back, all committed"
    assert seen == committed, (f"{len(set(committed) - set(seen))} skipped, {len(seen) - len(set(seen))} "
                               "twice, or out of order")


def test_the_api_reads_events_by_cursor_with_filters(clean_db, api):
    from support import ADMIN_TOKEN

    client = api()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.simulate_get("/api/tds/events").status_code == 401
    products = [make_object("product") for _ in range(3)]
    write(clean_db, products)
    with clean_db.begin() as conn:
        upsert.apply(conn, entities.get("customer"), SCHEMA,
                     [upsert.Change(make_object("customer"), dt.datetime.now(dt.UTC))], source="pull")
    first = client.simulate_get("/api/tds/events", params={"limit": 2}, headers=auth).json
    assert [e["data"]["zoho_id"] for e in first["events"]] == [p["item_id"] for p in products[:2]]
    rest = client.simulate_get("/api/tds/events", params={"after": first["next"]}, headers=auth).json
    assert [e["data"]["entity"] for e in rest["events"]] == ["product", "customer"]
    assert set(rest["events"][0]) == {"id", "type", "timestamp", "data"}
    again = client.simulate_get("/api/tds/events", params={"after": rest["next"]}, headers=auth).json
    assert again == {"events": [], "next": rest["next"]}
    only = client.simulate_get("/api/tds/events", params={"entity": "customer"}, headers=auth).json
    assert [e["data"]["source"] for e in only["events"]] == ["pull"]
    bad = client.simulate_get("/api/tds/events", params={"type": "nope"}, headers=auth)
    assert bad.status_code == 400 and bad.json["error"] == "invalid_type"


def test_retention_deletes_old_events_but_keeps_dead_letters(clean_db):
    from sqlalchemy import text

    from tds_daemon.care import retention

    write(clean_db, [make_object("product") for _ in range(3)])
    with clean_db.begin() as c:
        c.execute(text("UPDATE tds_events SET created_at = now() - interval '10 days' WHERE id <= 2"))
        c.execute(text("INSERT INTO tds_event_dead_letters (url, event_id, attempts, first_failed_at, last_error) "
                       "VALUES ('http://consumer.example/hook', 1, 9, now(), 'HTTP 500')"))
    assert retention.prune(clean_db, 30, events_days=7)["events"] == 1
    assert [e["id"] for e in stored(clean_db)] == [1, 3]


def test_a_reader_holds_back_behind_a_writer_still_in_flight_and_goes_on_when_it_ends(clean_db):
    """A transaction that has inserted its event but not committed: the horizon does not pass it (None after
    the wait), a read returns nothing and keeps the cursor; once it commits, the event is read."""
    write(clean_db, [make_object("product")])
    first = stored(clean_db)[-1]["id"]
    with clean_db.connect() as c:
        assert feed.horizon(c) == first
    conn = clean_db.connect()
    try:
        tx = conn.begin()
        conn.exec_driver_sql("INSERT INTO tds_events (type, payload) VALUES ('tds.zoho.entity.synced', '{}')")
        with clean_db.connect() as c:
            assert feed.horizon(c, wait_s=0.2) is None
            assert feed.read(c, first, 10, wait_s=0.2) == ([], first)
        tx.commit()
    finally:
        conn.close()
    with clean_db.connect() as c:
        page, cursor = feed.read(c, first, 10)
    assert [e["id"] for e in page] == [cursor] and cursor > first


def test_listeners_cannot_be_woken_while_postgresql_is_away_and_the_commit_is_not_held_up(caplog):
    """The notifier's own connection fails: ``send`` still returns at once, and the failure is one warning."""
    from support import free_port, wait_until

    from tds_daemon.apply import notice

    engine = create_engine(f"postgresql+psycopg2://root@127.0.0.1:{free_port()}/nothing",
                           connect_args={"connect_timeout": 2})
    started = time.monotonic()
    notice.send(engine, 1)
    assert time.monotonic() - started < 0.5
    wait_until(lambda: "could not wake listeners" in caplog.text, 10, message="the notifier's warning")
    engine.dispose()
