"""Running the Falcon app under gunicorn, configured from the TDS configuration."""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from tds_daemon import logs
from tds_daemon.config import Config, ConfigError, load

log = logging.getLogger(__name__)


def _worker_exit(server, worker) -> None:
    from tds_daemon.intake.sender import close_all

    close_all()


def _pre_fork(server, worker) -> None:
    # The lowest number no live worker has: a replaced worker's successor logs under its number.
    taken = {getattr(w, "tds_number", 0) for w in server.WORKERS.values()}
    worker.tds_number = next(n for n in range(1, len(taken) + 2) if n not in taken)


def _child_exit(server, worker) -> None:
    # Without this, a dead gunicorn worker's gauges would be summed forever.
    multiprocess.mark_process_dead(worker.pid)


class _Logger(Logger):
    """gunicorn's logger, minus the access log TDS does not write.

    ``gunicorn.access`` drops every record (see ``logconfig_dict``), but because a ``logconfig_dict``
    is set, gunicorn counts the access log as enabled and would still build each request's log fields
    (a dict over the whole WSGI environ) on every request only to have the record dropped
    (docs/PERFORMANCE.md).
    """

    def access(self, resp, req, environ, request_time) -> None:
        return


class ApiServer(BaseApplication):
    def __init__(self, config: Config, config_path: str | None = None):
        self.tds_config, self.config_path = config, config_path
        super().__init__()

    def reload(self) -> None:
        """SIGHUP: read the configuration again; gunicorn then starts workers that use it.

        ``tds run`` validates the file before it sends SIGHUP; if the file changed in between and no
        longer validates, the old configuration stays, as it would in the supervisor.
        """
        try:
            self.tds_config = load(self.config_path)
        except ConfigError as e:
            log.error("configuration reload refused, old configuration stays: %s", e)
        super().reload()

    def load_config(self) -> None:
        c = self.tds_config
        settings = {
            "bind": [c.api.bind],
            "workers": c.api.processes,
            "worker_class": "gthread" if c.api.threads > 1 else "sync",
            "threads": c.api.threads,
            "timeout": c.api.timeout_s,
            "graceful_timeout": c.supervisor.drain_timeout_s,
            "keepalive": 5,
            "backlog": 2048,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": c.log.level.lower(),
            # gunicorn's own lines in the same one-line format as the rest of TDS
            "logconfig_dict": {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"tds": {"()": logs.Formatter}},
                "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "tds",
                                        "stream": "ext://sys.stderr"}},
                "root": {"handlers": ["stderr"], "level": c.log.level},
                "loggers": {"gunicorn.error": {"handlers": [], "level": c.log.level, "propagate": True},
                            # one line per request is the reverse proxy's job, not ours
                            "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
            },
            "logger_class": _Logger,
            "proc_name": "tds-api",
            "control_socket_disable": True,
            "child_exit": _child_exit,
            "worker_exit": _worker_exit,
            "pre_fork": _pre_fork,
            "post_worker_init": lambda worker: logs.setup(
                c.log.level, f"{logs.role_from_env('api')}-{getattr(worker, 'tds_number', worker.age)}"),
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        # Imported and built in each worker after fork: no connection is shared across processes.
        from tds_daemon.api.app import create_app

        return create_app(self.tds_config)


def run(config: Config, config_path: str | None = None) -> None:
    ApiServer(config, config_path).run()
