"""``GET /api/tds/stats`` (the latest stats run and the history) and ``POST /api/tds/stats/run``.

A stats run pages through every entity's Zoho list under the shared rate limit: minutes, so the API
only sends the stats actor a message (202) and a worker runs it (see ``tds_daemon.care.stats``).
"""

from __future__ import annotations

import falcon

from tds_daemon import entities
from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, entity_param
from tds_daemon.care import stats
from tds_daemon.care.jobs import STATS_ACTOR, STATS_QUEUE


def _summary(run: dict) -> dict:
    return {
        "id": run["id"], "origin": run["origin"], "started_at": run["started_at"],
        "finished_at": run["finished_at"], "overall_match": run["overall_match"],
        "entities": {name: e["match_pct"] for name, e in run["entities"].items()},
        "repairs": run["repairs"], "errors": run["errors"],
    }


class StatsResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 30
        runs = stats.history(self.engine, limit)
        resp.media = {"latest": runs[0] if runs else None, "history": [_summary(r) for r in runs]}


class StatsRunResource:
    access = Access.ADMIN

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def on_post(self, req, resp) -> None:
        wanted = req.get_param_as_list("entity") or []
        names = []
        for name in wanted:
            names.append(entity_param(name))
        names = list(dict.fromkeys(names)) or None
        if not self.dispatcher.send_to(STATS_QUEUE, STATS_ACTOR, "api", names):
            raise ApiError(503, "broker_unavailable", "Redis does not answer, the stats run was not queued; "
                           "try again later", headers={"Retry-After": "5"})
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "queued": {"queue": STATS_QUEUE, "actor": STATS_ACTOR, "origin": "api",
                                                       "entities": names or [e.name for e in entities.ENTITIES]}}
