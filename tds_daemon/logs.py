"""One line per event, key=value context; secrets and whole payloads never at INFO."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # Dramatiq and gunicorn are chatty at INFO about things an operator does not act on.
    logging.getLogger("dramatiq").setLevel(max(logging.getLevelName(level), logging.WARNING))
    # APScheduler logs every job start and end; the scheduler logs each run itself, with its outcome.
    logging.getLogger("apscheduler").setLevel(max(logging.getLevelName(level), logging.WARNING))
