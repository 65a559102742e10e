"""The ingest benchmark's event subscriber: a local consumer that answers 204 to each push and records it.

``ops/bench/ingest --subscriber`` runs it as a process of its own (so that its work is not the sender's) and
names it in ``[[events.subscribers]]``; by hand: ``.venv/bin/python ops/bench/consumer.py PORT``.
``GET /stats`` answers what it has received since it started or was last reset; ``GET /stats/reset`` answers
the same, then forgets it.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Received:
    """What the consumer has been pushed: each event's id, order and created→received latency."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.seen: set[int] = set()
        self.lat_ms: list[float] = []
        self.pushes = 0
        self.oldest = self.newest = 0  # of the ids received
        self.out_of_order = 0  # a new id below one already received: id order broken
        self.first_at = self.last_at = None  # wall clock of the first and the last push

    def add(self, event_id: int, created: float, now: float) -> None:
        with self.lock:
            self.pushes += 1
            if event_id not in self.seen:
                if event_id < self.newest:
                    self.out_of_order += 1
                self.oldest = min(self.oldest, event_id) if self.seen else event_id
                self.newest = max(self.newest, event_id)
                self.seen.add(event_id)
                self.lat_ms.append(1000 * (now - created))
            self.first_at = self.first_at or now
            self.last_at = now

    def stats(self, reset: bool = False) -> dict:
        """Pushes, distinct ids (oldest, newest), pushes out of id order, created→received p50/p99/max in ms,
        the wall-clock times of the first and the last push; then forget them all if ``reset``."""
        with self.lock:
            lats = sorted(self.lat_ms)
            out = {"pushes": self.pushes, "distinct": len(self.seen), "oldest": self.oldest,
                   "newest": self.newest, "out_of_order": self.out_of_order,
                   "p50_ms": pct(lats, 0.5), "p99_ms": pct(lats, 0.99), "max_ms": lats[-1] if lats else 0.0,
                   "first_at": self.first_at, "last_at": self.last_at}
            if reset:
                self.reset()
            return out


def serve(port: int) -> None:
    """Answer 204 to each POSTed event on 127.0.0.1:``port`` and record it, until killed."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            now = time.time()
            event = json.loads(body)
            received.add(event["id"], dt.datetime.fromisoformat(event["timestamp"]).timestamp(), now)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            body = json.dumps(received.stats(reset=self.path == "/stats/reset")).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def stats(port: int, reset: bool = False) -> dict:
    """The consumer's ``/stats`` (``/stats/reset`` with ``reset``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/stats/reset" if reset else "/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
