"""A flag that a signal handler may raise and a loop may wait on.

``threading.Event.set`` takes a lock. A handler that runs in the main thread while that thread is inside the
same event's ``wait``, ``clear`` or ``set`` (two stop signals close together are enough) waits on a lock its
own thread holds, and the process never stops. ``Wake`` takes no lock: a byte on a pipe wakes the waiter.
"""

from __future__ import annotations

import os
import select


class Wake:
    """``set`` from a signal handler or any thread; ``wait`` and ``clear`` from the loop that owns it."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()  # not inherited by child processes (PEP 446)
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._flag = False

    def set(self) -> None:
        self._flag = True
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:  # the pipe is full of earlier wakes: the waiter wakes anyway
            pass

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        """Lower the flag. A ``set`` racing with this may be lowered too, but its byte stays: the next
        ``wait`` returns at once and the loop looks at its own state again."""
        self._drain()
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Until ``set`` or ``timeout`` seconds; whether the flag is up."""
        if not self._flag:
            select.select([self._read], [], [], timeout)
        return self._flag

    def _drain(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
