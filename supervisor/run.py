"""``tds run``, first form: the API server and N worker processes as children.

A child that dies is started again (one-for-one, with a short backoff); SIGTERM or SIGINT stops
every child gracefully, then forcibly after a deadline. The full supervisor (sd_notify, reload,
restart intensity, scheduler) builds on this.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from tds_daemon.config import Config

from .children import Child, describe_exit, tds_command

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 40
RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10)


def children_for(config: Config, config_path: str | None) -> list[Child]:
    extra = ["--config", config_path] if config_path else []
    env = dict(os.environ)
    kids = [Child("api", tds_command("api", *extra), env)]
    kids += [Child(f"worker-{i}", tds_command("worker", *extra), env)
             for i in range(1, config.workers.processes + 1)]
    return kids


def run(config: Config, config_path: str | None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    kids = children_for(config, config_path)
    for kid in kids:
        kid.start()
    log.info("tds running: api on %s, %d worker process(es)", config.api.bind, config.workers.processes)
    due: dict[str, float] = {}
    while not stop.wait(0.2):
        now = time.monotonic()
        for kid in kids:
            code = kid.poll()
            if code is None or kid.name in due and due[kid.name] > now:
                continue
            if kid.name not in due:
                kid.restarts = [t for t in kid.restarts if now - t < 60] + [now]
                delay = RESTART_BACKOFF_S[min(len(kid.restarts) - 1, len(RESTART_BACKOFF_S) - 1)]
                log.warning("%s pid=%s %s; restarting in %.1fs", kid.name, kid.pid, describe_exit(code), delay)
                due[kid.name] = now + delay
                continue
            del due[kid.name]
            kid.start()
    log.info("stopping: SIGTERM to %d children", len(kids))
    for kid in kids:
        kid.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for kid in kids:
        if not kid.wait(deadline):
            log.warning("%s did not stop in %ds; SIGKILL", kid.name, STOP_TIMEOUT_S)
            kid.signal(signal.SIGKILL)
            kid.wait(time.monotonic() + 5)
    log.info("stopped")
    return 0
