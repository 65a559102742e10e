"""``POST /api/tds/auto-healing/run`` and ``GET /api/tds/auto-healing/runs``: the healer, on demand.

A run is bounded (each sweep is one statement, at most ``healer.dead_letter_batch`` dead letters), so it
runs here, in the API process, and the answer is its stored report (see ``tds_daemon.care.healing``).
"""

from __future__ import annotations

from tds_daemon.api.auth import Access
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care import healing
from tds_daemon.config import Config


class HealingRunResource:
    access = Access.ADMIN

    def __init__(self, config: Config, engine, dispatcher: Dispatcher):
        self.config, self.engine = config, engine
        # The same broker connection as intake, its sends counted apart: tds_dispatches_total{origin="healer"}.
        self.dispatcher = Dispatcher(dispatcher.broker, origin="healer")

    def on_post(self, req, resp) -> None:
        resp.media = healing.run(self.engine, self.dispatcher, self.config, "api")


class HealingRunsResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 20
        resp.media = {"runs": healing.recent(self.engine, limit)}
