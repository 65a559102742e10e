"""What an actor needs from its process: configuration, a database engine, a dispatcher.

Set once per worker process by ``actors.worker`` before any message is consumed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.config import Config
from tds_daemon.guard.breakers import Breakers


@dataclass
class Runtime:
    config: Config
    engine: Engine
    dispatcher: Dispatcher
    breakers: Breakers | None = None  # the entity breakers the actors consult (None: no breakers)
    stopping: threading.Event = field(default_factory=threading.Event)  # set when the process is asked to stop


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def get() -> Runtime:
    if _current is None:
        raise RuntimeError("actors.runtime.install() has not been called in this process")
    return _current
