"""Events pushed by ``tds run`` itself: subscribers from the configuration file, real consumers on local ports.

A subscriber that is down for a while gets every event afterwards, in order and signed; one that accepts
connections and never answers slows neither intake nor applying; a reload that changes the subscribers
starts pushing to the new one.
"""

from __future__ import annotations

import base64
import json
import signal
import socket

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook
from support import all_applied, start_daemon, wait_until, web
from support.subscriber import Subscriber as Consumer
from support.zoho_objects import default_payload, make_object

pytestmark = pytest.mark.timeout(240)

SECRET = "whsec_" + base64.b64encode(b"events pushed by tds run, signed").decode()


class BlackHole:
    """A port that accepts connections (the kernel's backlog does) and never reads or answers them; its URL's
    path and query are the kind of secret a webhook URL holds."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.origin = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.url = f"{self.origin}/hooks/secret-path-abc?key=xyz"

    def close(self):
        self.sock.close()


@pytest.fixture
def consumers():
    made = []

    def make():
        made.append(Consumer())
        return made[-1]

    yield make
    for c in made:
        c.close()


def subscriber_toml(url: str, name: str | None, extra: str = "") -> str:
    named = f'name = "{name}"\n' if name else ""
    return f'[[events.subscribers]]\nurl = "{url}"\nsecret = "{SECRET}"\n{named}{extra}'


def metric(daemon, name: str, subscriber: str) -> float:
    for line in web.get(f"{daemon.base_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'{name}{{subscriber="{subscriber}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def subscribers_started(engine, n: int) -> bool:
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM tds_event_subscribers")).scalar() >= n


def synced_ids(engine, after: int = 0) -> list[int]:
    with engine.connect() as c:
        return c.execute(text("SELECT id FROM tds_events WHERE type = 'tds.zoho.entity.synced' AND id > :a "
                              "ORDER BY id"), {"a": after}).scalars().all()


def received(consumer) -> list[dict]:
    """Each push verified with the Standard Webhooks library (it raises on a bad signature)."""
    verifier = Webhook(SECRET)
    with consumer.lock:
        pushes = list(consumer.pushes)
    return [verifier.verify(body, headers) and json.loads(body) for headers, body in pushes]


def test_a_subscriber_down_for_a_while_gets_everything_and_a_dead_one_slows_nothing(
        processes, env, engine, tmp_path, consumers):
    erp, hole = consumers(), BlackHole()
    erp.status = 503  # down
    config = tmp_path / "tds.toml"
    config.write_text(subscriber_toml(erp.url, "erp") + subscriber_toml(hole.url, None))  # shown by its host
    try:
        daemon = start_daemon(processes, env, TDS_CONFIG=str(config))
        wait_until(lambda: subscribers_started(engine, 2), 30, message="both pushers started")

        objects = [make_object("product") for _ in range(60)]
        answers = [daemon.post("product", default_payload("product", o)).status_code for o in objects]
        assert answers == [202] * len(objects)
        # Applying does not wait on either subscriber: the one that never answers holds a pusher thread only.
        wait_until(lambda: all_applied(engine, len(objects)), 60, message="every webhook applied")
        wait_until(lambda: metric(daemon, "tds_events_failed_total", "erp") >= 1, 30, message="erp failing")
        assert received(erp) == []

        erp.status = 204  # back
        ids = synced_ids(engine)
        assert len(ids) == len(objects)
        wait_until(lambda: {e["id"] for e in received(erp)} >= set(ids), 90, message="erp has every event")
        got = received(erp)
        firsts = list(dict.fromkeys(e["id"] for e in got))
        assert firsts == sorted(firsts), "pushed in id order"
        assert {e["data"]["zoho_id"] for e in got} == {str(o["item_id"]) for o in objects}
        assert {(e["data"]["action"], e["data"]["source"]) for e in got} == {("created", "webhook")}
        wait_until(lambda: metric(daemon, "tds_events_failed_total", hole.origin) >= 1, 30,
                   message="the silent subscriber timed out")
        assert metric(daemon, "tds_events_delivered_total", "erp") >= len(ids)
        assert metric(daemon, "tds_events_delivered_total", hole.origin) == 0
        assert f"events: push to {hole.origin} failed" in daemon.output(tail=None)
        scraped = web.get(f"{daemon.base_url}/metrics", timeout=5).text
        assert f'tds_events_lag_seconds{{subscriber="{hole.origin}"}}' in scraped

        # A reload that swaps the silent subscriber for a new one starts pushing to it.
        shop = consumers()
        config.write_text(subscriber_toml(erp.url, "erp")
                          + subscriber_toml(shop.url, "shop", 'entities = ["customer"]\n'))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in daemon.output(tail=None), 60, message="reloaded")
        wait_until(lambda: subscribers_started(engine, 3), 30, message="the new pusher started")
        last = ids[-1]
        customer = make_object("customer")
        assert daemon.post("customer", default_payload("customer", customer)).status_code == 202
        assert daemon.post("product", default_payload("product", make_object("product"))).status_code == 202
        wait_until(lambda: len(synced_ids(engine, last)) == 2, 30, message="two more events")
        wait_until(lambda: len(received(shop)) == 1, 30, message="shop got the customer")
        assert received(shop)[0]["data"]["zoho_id"] == str(customer["contact_id"])
        wait_until(lambda: {e["id"] for e in received(erp)} >= set(synced_ids(engine)), 30,
                   message="erp got both")
        assert processes.stop(daemon.proc) == 0
        for secret in (SECRET, "secret-path-abc", "xyz"):
            assert secret not in daemon.output(tail=None) and secret not in scraped
    finally:
        hole.close()
