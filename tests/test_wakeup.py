"""Wake-up calls: an idle consumer waits for a notification instead of polling, and polls again when
notifications cannot arrive.

Real Redis (the shared server under a namespace of the test's own, or a private redis-server the test
stops), a real Dramatiq consumer of ``tds_daemon.apply.broker``. The idle wait is made long (30 s) so that a
message fetched within a few seconds can only have been fetched thanks to its wake-up call, or to
polling when there is none.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from support import all_applied, free_port, holds_for, start_daemon, start_private_redis, wait_until
from support.zoho_objects import default_payload, make_object

from tds_daemon.apply.broker import Broker
from tds_daemon.apply.wakeup import CHANNEL, Wakeup

QUEUE = "tds.wakeup_test"
IDLE_WAIT_S = 30
FETCHED_WITHIN_S = 5  # far below IDLE_WAIT_S, far above a poll or a wake-up


class Consumer:
    """One Dramatiq consumer of QUEUE, iterated on a thread as a worker's consumer thread does."""

    def __init__(self, url: str, namespace: str, listen: bool = True):
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.wakeup = Wakeup(namespace, idle_wait_s=IDLE_WAIT_S)
        self.broker = Broker(client=self.client, namespace=namespace, wakeup=self.wakeup)
        self.broker.declare_queue(QUEUE)
        self.fetches = 0
        self.received: list[Message] = []
        fetch = self.broker._dispatch("fetch")

        def counted_fetch(*args):
            self.fetches += 1
            return fetch(*args)
        self.broker.do_fetch = counted_fetch
        if listen:
            self.wakeup.listen(self.client)
            wait_until(lambda: self.wakeup.listening, 10, message="the wake-up subscription")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = self.broker.consume(QUEUE, prefetch=1, timeout=100)
        while not self._stop.is_set():
            try:
                message = next(consumer)
            except Exception:  # Redis gone for a while: a worker's consumer thread restarts too
                self._stop.wait(0.2)
                continue
            if message is not None:
                self.received.append(message)
                consumer.ack(message)

    def close(self) -> None:
        self._stop.set()
        self.wakeup.close()  # ends the consumer's wait
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()
        self.client.close()


def send(url: str, namespace: str, *, wakeup: bool = True) -> None:
    """What the API does: enqueue with a broker of ``make_broker``'s kind (or, without, a plain one)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    broker = (Broker(client=client, namespace=namespace, wakeup=Wakeup(namespace)) if wakeup
              else RedisBroker(client=client, namespace=namespace))
    broker.declare_queue(QUEUE)
    broker.enqueue(Message(queue_name=QUEUE, actor_name="nothing", args=(), kwargs={}, options={}))
    client.close()


def fetches_stay_at(consumer: Consumer, seconds: float) -> bool:
    """Bounded check that something does not happen: the idle consumer fetches nothing more."""
    before = consumer.fetches
    return holds_for(lambda: consumer.fetches == before, seconds)


@pytest.fixture
def namespace(redis_namespace):
    return f"{redis_namespace}_wake_{uuid.uuid4().hex[:8]}"


def test_an_idle_consumer_does_not_poll_and_a_sent_message_wakes_it(redis_url, namespace):
    consumer = Consumer(redis_url, namespace)
    try:
        wait_until(lambda: consumer.fetches >= 1, 10, message="the first fetch")
        # Dramatiq's own consumer would fetch again every 100 ms (its timeout here) for nothing.
        assert fetches_stay_at(consumer, 1.5), f"the idle consumer polled: {consumer.fetches} fetches"
        send(redis_url, namespace)
        wait_until(lambda: consumer.received, FETCHED_WITHIN_S, message="the message, fetched on its wake-up call")
        assert consumer.fetches <= 3, consumer.fetches
    finally:
        consumer.close()


def test_without_the_subscription_an_idle_consumer_polls(redis_url, namespace):
    consumer = Consumer(redis_url, namespace, listen=False)
    try:
        send(redis_url, namespace, wakeup=False)  # no wake-up call either
        wait_until(lambda: consumer.received, FETCHED_WITHIN_S, message="the message, fetched by polling")
        wait_until(lambda: consumer.fetches >= 5, 5, message="polling to go on")
    finally:
        consumer.close()


@pytest.mark.timeout(90)
def test_redis_restarted_consumers_poll_while_it_is_down_then_wait_for_wake_up_calls_again(processes, namespace):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_private_redis(processes, port)
    consumer = Consumer(url, namespace)
    try:
        processes.stop(server)
        wait_until(lambda: not consumer.wakeup.listening, 15, message="the subscription to be seen lost")

        start_private_redis(processes, port)  # empty, same address
        wait_until(lambda: consumer.wakeup.listening, 15, message="the subscription back")
        # Listening again, and idle: only a wake-up call can bring the next message within the bound.
        wait_until(lambda: fetches_stay_at(consumer, 1.0), 15, message="the consumer to be idle and waiting")
        send(url, namespace)
        wait_until(lambda: consumer.received, FETCHED_WITHIN_S, message="the message, fetched on its wake-up call")
    finally:
        consumer.close()


def test_a_daemon_s_workers_listen_and_a_webhook_wakes_them(module_processes, migrated, clean_db, namespace):
    daemon = start_daemon(module_processes, migrated, TDS_REDIS_NAMESPACE=namespace)
    client = redis.Redis.from_url(migrated["TDS_REDIS_URL"], socket_timeout=5)
    channel = CHANNEL.format(namespace=namespace)
    try:
        workers = int(migrated["TDS_WORKERS_PROCESSES"])
        wait_until(lambda: client.pubsub_numsub(channel) == [(channel.encode(), workers)], 30,
                   message=f"each of the {workers} worker processes to subscribe to {channel}")
        r = daemon.post("product", default_payload("product", make_object("product")))
        assert r.status_code == 202, r.text
        wait_until(lambda: all_applied(clean_db, 1), 10, message="the webhook applied")
    finally:
        module_processes.stop(daemon.proc)
        daemon.http.close()
        client.close()
