"""``POST /api/tds/auto-healing/run`` and ``GET /api/tds/auto-healing/runs``: the healer, on demand.

A run is bounded (each sweep is one statement, at most ``healer.dead_letter_batch`` dead letters), so it
runs here, in the API process, and the answer is its stored report (see ``tds_daemon.healing``).
"""

from __future__ import annotations

import contextlib

from sqlalchemy import exc

from .. import healing
from ..config import Config
from ..db import is_transient
from ..dispatch import Dispatcher
from .errors import ApiError


@contextlib.contextmanager
def database_answers():
    """A database that does not answer is a 503 with Retry-After, never a 500."""
    try:
        yield
    except exc.SQLAlchemyError as e:
        if not is_transient(e):
            raise
        raise ApiError(503, "database_unavailable", "TDS cannot reach its database; try again later",
                       headers={"Retry-After": "30"}) from None


class HealingRunResource:
    def __init__(self, config: Config, engine, dispatcher: Dispatcher):
        self.config, self.engine = config, engine
        # The same broker connection as intake, its sends counted apart: tds_dispatches_total{origin="healer"}.
        self.dispatcher = Dispatcher(dispatcher.broker, origin="healer")

    def on_post(self, req, resp) -> None:
        with database_answers():
            resp.media = healing.run(self.engine, self.dispatcher, self.config, "api")


class HealingRunsResource:
    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 20
        with database_answers():
            resp.media = {"runs": healing.recent(self.engine, limit)}
