"""Progress of sync runs on the command line: a live line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    """One line per entity in progress: redrawn in place on a terminal, written out line by line elsewhere."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._lock = threading.Lock()
        self._state: dict[str, str] = {}
        self._started = time.monotonic()

    def update(self, entity: str, tally) -> None:
        self.show(entity, f"{entity}: {tally.objects} objects, {tally.pages} pages")

    def show(self, entity: str, text: str) -> None:
        """The live line's part for ``entity`` (a plain line when not on a terminal)."""
        with self._lock:
            self._state[entity] = text
            if self.live:
                elapsed = time.monotonic() - self._started
                line = " | ".join(self._state.values())
                bar = "#" * (int(elapsed * 4) % 20 + 1)
                self.stream.write(f"\r\x1b[K[{bar:<20}] {line[:200]}")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def done(self, entity: str, line: str) -> None:
        with self._lock:
            self._state.pop(entity, None)
            self.stream.write(("\r\x1b[K" if self.live else "") + line + "\n")
            self.stream.flush()
