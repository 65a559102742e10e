"""Counters for ``GET /_sim/stats``: keyed by paths such as ("apps", "books", "status", "429")."""

from __future__ import annotations

import threading
import time
from collections import defaultdict


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.started = time.time()
            self.counters: dict[tuple[str, ...], int] = defaultdict(int)
            self.notes: dict[str, object] = {}

    def inc(self, *key: str, n: int = 1) -> None:
        with self.lock:
            self.counters[key] += n

    def note(self, name: str, value: object) -> None:
        with self.lock:
            self.notes[name] = value

    def snapshot(self) -> dict:
        out: dict = {}
        with self.lock:
            items = sorted(self.counters.items())
            notes = dict(self.notes)
            started = self.started
        for key, n in items:
            node = out
            for part in key[:-1]:
                node = node.setdefault(part, {})
            node[key[-1]] = n
        out["uptime_s"] = round(time.time() - started, 3)
        out.update(notes)
        return out
