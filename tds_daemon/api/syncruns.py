"""Admin API for pulls: start sync runs, read them, and the previous system's bulk-sync endpoints."""

from __future__ import annotations

import falcon
import redis
from sqlalchemy import func, select

from tds_daemon import entities
from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, entity_param, invalid_param, path_id
from tds_daemon.pull import detail, launch, runs, stockitems
from tds_daemon.pull.pulls import KINDS
from tds_daemon.store.schema import entity_table, sync_cursors, sync_runs

# The previous system's bulk endpoints, as data: path → (entities, kind).
BULK = {
    "products": (("product",), "full"),
    "customers": (("customer",), "full"),
    # The item list carries stock_on_hand and available_stock: a full item pull is items with stock.
    "items-with-stock": (("product",), "full"),
    "pricelists": (("price_list",), "full"),
    "sync-all": (tuple(e.name for e in entities.ENTITIES), "full"),
}


class RunStarter:
    """Queues runs and asks a worker to execute them; a run whose message is lost is re-sent later. A run
    already queued (not started) for the same entity and kind is answered instead of a second one."""

    def __init__(self, engine, dispatcher):
        self.engine, self.dispatcher = engine, dispatcher

    def start(self, names, kind: str, origin: str) -> list[dict]:
        return [r.as_json() for r in launch.queue(self.engine, self.dispatcher, names, kind, origin,
                                                  reuse_queued=True)]

    def answer(self, resp, names, kind: str, origin: str) -> None:
        """202 with the queued runs: they are in PostgreSQL, a worker executes them."""
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "runs": self.start(names, kind, origin)}


def _entities(name: str) -> list[str]:
    if name == "all":
        return [e.name for e in entities.ENTITIES]
    spec = entities.resolve(name)
    if spec is None:
        raise ApiError(404, "unknown_entity", entities.unknown(name, with_all=True))
    return [spec.name]


class SyncResource:
    access = Access.ADMIN

    def __init__(self, starter: RunStarter):
        self.starter = starter

    def on_post(self, req, resp, entity: str) -> None:
        kind = req.get_param("kind") or ("full" if req.get_param_as_bool("full") else "incremental")
        if kind not in KINDS:
            raise invalid_param("kind", kind, KINDS, "invalid_kind")
        names = _entities(entity)
        if kind == "stock":
            names = [n for n in names if entities.BY_NAME[n].stock_columns]
            if not names:
                raise ApiError(400, "no_stock", "stock sync applies to products only")
        self.starter.answer(resp, names, kind, "api")


class StockItemsResource:
    """``POST /api/tds/sync/stock/specific`` ``{"item_ids": [...]}``: queue a stock refresh of these items only
    (a whole-object read each); 202 with the run, whose ``item_results`` say what became of each id."""

    access = Access.ADMIN

    def __init__(self, engine, dispatcher):
        self.engine, self.dispatcher = engine, dispatcher

    def on_post(self, req, resp) -> None:
        body = req.get_media(default_when_empty=None)
        item_ids = stockitems.chosen(body.get("item_ids") if isinstance(body, dict) else None)
        run = launch.queue_items(self.engine, self.dispatcher, stockitems.ITEM.name, "stock", item_ids, "api")
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "runs": [run.as_json()], "item_ids": item_ids,
                      "results": f"/api/tds/runs/{run.id}"}


class RunsResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        entity = req.get_param("entity")
        if entity:
            entity = entity_param(entity)
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 50
        resp.media = {"runs": runs.recent(self.engine, entity=entity, limit=limit)}


class RunResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp, run_id: str) -> None:
        run_id = path_id(run_id, "unknown_run", "sync run")
        run = runs.get(self.engine, run_id)
        if run is None:
            raise ApiError(404, "unknown_run", f"no sync run {run_id}")
        resp.media = run


_RUN_SUMMARY = ("id", "status", "requested_at", "finished_at", "objects", "requests", "error")


class EntitiesResource:
    access = Access.ADMIN

    def __init__(self, engine, config, budget):
        self.engine, self.config, self.budget = engine, config, budget
        self.schema = config.database.entity_schema

    def on_get(self, req, resp) -> None:
        try:
            progress = detail.progress_report(self.engine, self.config, self.budget)
            budget = self.budget.state().as_json()
        except redis.RedisError:
            progress = detail.progress_report(self.engine, self.config, None)
            budget = None
        out = []
        with self.engine.connect() as conn:
            cursors = {r.entity_type: r for r in conn.execute(select(sync_cursors))}
            last_runs = runs.latest_per_kind(conn)
            for spec in entities.ENTITIES:
                t = entity_table(spec, self.schema)
                live, deleted = conn.execute(select(
                    func.count().filter(t.c.deleted_at.is_(None)), func.count().filter(t.c.deleted_at.isnot(None)))
                ).one()
                c = cursors.get(spec.name)
                out.append({
                    "name": spec.name, "app": spec.app, "table": f"{self.schema}.{spec.table}",
                    "aliases": list(spec.aliases), "queue": spec.queue, "live_rows": live, "deleted_rows": deleted,
                    "cursor": c.last_modified.isoformat() if c and c.last_modified else None,
                    "last_full_at": c.last_full_at.isoformat() if c and c.last_full_at else None,
                    "last_incremental_at": c.last_incremental_at.isoformat() if c and c.last_incremental_at else None,
                    "lists_whole": spec.lists_whole,
                    "last_runs": {kind: {k: run[k] for k in _RUN_SUMMARY} for kind, run in
                                  last_runs.get(spec.name, {}).items()},
                    "detail_backlog": progress["entities"].get(spec.name, {"missing": 0, "stale": 0, "waiting": 0}),
                })
        resp.media = {"entities": out, "detail": {k: v for k, v in progress.items() if k != "entities"},
                      "zoho_budget": budget}


class BulkSyncResource:
    access = Access.ADMIN

    def __init__(self, starter: RunStarter):
        self.starter = starter

    def on_post(self, req, resp, what: str) -> None:
        if what not in BULK:
            raise ApiError(404, "unknown_bulk_sync", f"no bulk sync {what[:40]!r}; known: {', '.join(BULK)}")
        names, kind = BULK[what]
        self.starter.answer(resp, names, kind, "bulk")


class BulkStatusResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        with self.engine.connect() as conn:
            active = conn.execute(select(sync_runs).where(sync_runs.c.status.in_(("queued", "running")))
                                  .order_by(sync_runs.c.id)).all()
            latest = runs.latest_per_entity(conn)
        resp.media = {"in_progress": [runs.as_json(r._mapping) for r in active], "latest": latest}
