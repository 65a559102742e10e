"""One line per event, key=value context; secrets and whole payloads never at INFO.

Each line names the process's role (``supervisor``, ``scheduler``, ``api``, ``api-1``, ``worker-2`` …) and
its pid. ``tds run`` gives each child its role in ``TDS_ROLE``; the API's gunicorn workers add their
number to it; the scheduler's threads, inside the supervisor, are named ``tds-scheduler…``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(role)s[%(process)d] %(name)s: %(message)s"
ROLE_ENV = "TDS_ROLE"
SCHEDULER_THREADS = ("tds-scheduler", "APScheduler")
_role = "tds"


def role_from_env(default: str) -> str:
    """The role ``tds run`` gave this process, else ``default`` (a command run by hand)."""
    return os.environ.get(ROLE_ENV) or default


def pairs(value: Mapping[str, Any], prefix: str = "") -> str:
    """A mapping as ``key=value`` pairs (nested keys joined by dots); ``-`` when empty."""
    out = []
    for key, v in value.items():
        name = f"{prefix}{key}"
        if isinstance(v, Mapping):
            out.append(pairs(v, f"{name}.") if v else f"{name}=-")
        else:
            text = str(v)
            out.append(f"{name}={text!r}" if not text or any(c.isspace() for c in text) else f"{name}={text}")
    return " ".join(out) or "-"


class Formatter(logging.Formatter):
    """TDS's line: the role of the process (or ``scheduler`` for the scheduler's threads), and a mapping
    passed as a log argument written as ``key=value`` pairs instead of a Python dict."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%", validate: bool = True,
                 **kwargs):
        super().__init__(fmt or FORMAT, datefmt, style, validate, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        thread = record.threadName or ""
        record.role = "scheduler" if thread.startswith(SCHEDULER_THREADS) else _role
        args = record.args
        if isinstance(args, Mapping) and "%(" not in str(record.msg):  # log.info("%s", one_dict)
            record.args = (pairs(args),)
        elif isinstance(args, tuple) and any(isinstance(a, Mapping) for a in args):
            record.args = tuple(pairs(a) if isinstance(a, Mapping) else a for a in args)
        return super().format(record)


def setup(level: str = "INFO", role: str | None = None) -> None:
    """Log to stderr in TDS's line format at ``level``; ``role`` names this process (kept if not given)."""
    global _role
    if role:
        _role = role
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    root.addHandler(handler)
    root.setLevel(level)
    quiet = max(logging.getLevelName(level), logging.WARNING)
    # Dramatiq and gunicorn are chatty at INFO about things an operator does not act on.
    logging.getLogger("dramatiq").setLevel(quiet)
    # APScheduler logs every job start and end; the scheduler logs each run itself, with its outcome.
    logging.getLogger("apscheduler").setLevel(quiet)
    # One line per Zoho request: the client counts them in metrics and logs what goes wrong itself.
    logging.getLogger("httpx").setLevel(quiet)
    logging.getLogger("httpcore").setLevel(quiet)
