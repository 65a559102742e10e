"""Reload on SIGHUP (``systemctl reload tds``) without refusing a single webhook.

1. RELOADING=1, then the file is read and validated as a whole. A bad one is refused: every bad key
   and its reason is logged, systemd's STATUS says so, and the old configuration stays in force.
2. gunicorn gets SIGHUP: it re-reads the file itself, starts new workers on the same listening
   socket and lets the old ones finish their requests, so no connection is refused.
3. Each worker is replaced one at a time: the new one starts and consumes before the old one is
   asked to finish its in-flight messages (its prefetched ones go back to Redis, and PostgreSQL
   holds every item anyway). If a new worker does not come up, the old one is kept and the reload
   stops there, said in the log and the STATUS.
4. The scheduler reschedules its jobs; the event pushers restart if the subscribers changed; the restart
   policy takes its new limits. READY=1.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from tds_daemon import logs, metrics
from tds_daemon.config import ConfigError, load
from tds_daemon.guard import alerts
from tds_daemon.oneline import first_line

if TYPE_CHECKING:
    from supervisor.run import Supervisor

log = logging.getLogger(__name__)
WORKER_START_TIMEOUT_S = 60


def reload(sup: Supervisor) -> None:
    sup.notify.reloading()
    log.info("reloading configuration from %s", sup.config_path or "defaults and environment")
    try:
        config = load(sup.config_path)
    except ConfigError as e:
        for key, why in e.problems:
            log.error("configuration reload refused: %s: %s", key, why)
        metrics.config_reloads.labels("refused").inc()
        key, why = e.problems[0]
        more = f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        _alert(sup, f"configuration reload refused, the previous configuration stays in force: {key}: {why}{more}; "
               "correct the file (tds check-config names every bad key) and reload again",
               {"problems": [{"key": k, "reason": r} for k, r in e.problems]})
        sup.notify.ready()
        sup.set_status(f"{sup.describe()}; reload refused: {key}: {why}{more}; old configuration in force")
        return
    old, sup.config = sup.config, config
    tree = sup.tree
    tree.config = config
    tree.policy.update(config.supervisor.max_restarts, config.supervisor.restart_window_s)
    logs.setup(config.log.level)

    api = tree.children.get("api")
    if api is not None:
        api.signal(signal.SIGHUP)
    problem = _replace_workers(sup, old)
    if sup.scheduler is not None:
        sup.scheduler.reschedule(config)
    sup.publishing.apply(config)
    metrics.config_reloads.labels("applied").inc()
    _alert(sup, None)
    sup.notify.ready()
    status = sup.describe() + (f"; reload incomplete: {problem}" if problem else "")
    sup._status = ""  # say it again even if unchanged, after RELOADING
    sup.set_status(status)
    if problem:
        log.error("configuration reloaded, but %s", problem)
    else:
        log.info("configuration reloaded: %s", status)


def _replace_workers(sup: Supervisor, old) -> str | None:
    tree = sup.tree
    wanted = sup.config.workers.processes
    for i in range(1, wanted + 1):
        name = f"worker-{i}"
        new = tree.make_worker(i)
        previous = tree.children.get(name)
        new.start()
        sup.wait(lambda c=new: c.is_ready() or c.poll() is not None, WORKER_START_TIMEOUT_S)
        if not new.is_ready():
            new.kill()
            return f"the new {name} did not start within {WORKER_START_TIMEOUT_S}s; the old one keeps running"
        tree.replace(new)
        if previous is not None:
            tree.retire(previous)
            drain_s = old.supervisor.drain_timeout_s + 5
            if not sup.wait(lambda p=previous: p.poll() is not None, drain_s):
                log.warning("old %s pid=%s did not finish in %ds; killing it", name, previous.pid, drain_s)
                previous.kill()
    for name in tree.worker_names():
        if int(name.split("-", 1)[1]) > wanted:
            child = tree.children.pop(name)
            tree.retire(child)
            sup.wait(lambda c=child: c.poll() is not None, old.supervisor.drain_timeout_s + 5)
    tree.tick()
    return None


ALERT = "config_reload_refused"


def _alert(sup: Supervisor, message: str | None, details: dict | None = None) -> None:
    """Raise (message) or resolve (None) the refused-reload alert; a database that is down only costs the alert."""
    from sqlalchemy import exc

    try:
        if message is None:
            alerts.resolve(sup.engine(), ALERT)
        else:
            alerts.raise_alert(sup.engine(), ALERT, "warning", message, details=details)
    except exc.SQLAlchemyError as e:
        log.error("could not record the alert %s: %s", ALERT, first_line(e))
