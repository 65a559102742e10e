"""``tds sync``: pull from Zoho now, in the foreground; several entities in two processes; ``--details``
reads the whole objects that rows still lack."""

from __future__ import annotations

import sys

from tds.preflight import Failure, command, load_config, prepare_metrics_dir, require_redis, require_schema
from tds.progress import Progress
from tds_daemon.config import Config
from tds_daemon.oneline import described


def add_command(sub) -> None:
    p = command(sub, "sync", cmd_sync, "pull from Zoho now, in the foreground")
    p.add_argument("entity", help="an entity name or alias, or 'all'")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--full", action="store_true", help="every object, and detect deletions")
    how.add_argument("--since", metavar="ISO8601", help="objects modified since this time")
    how.add_argument("--stock", action="store_true", help="only the stock fields of items")
    how.add_argument("--details", action="store_true", help="read the whole objects that rows still lack "
                     "(one Zoho call each, counted against the day's budget and allowed past it)")
    p.add_argument("--id", action="append", dest="ids", metavar="ID",
                   help="with --stock, for products: only this item (repeat for more); its whole object is read")


def cmd_sync(args) -> int:
    import datetime as dt
    import logging

    from tds_daemon import entities, logs, zohovalues

    config = load_config(args)
    if args.entity == "all":
        specs = list(entities.ENTITIES)
    else:
        spec = entities.resolve(args.entity)
        if spec is None:
            raise Failure(entities.unknown(args.entity, with_all=True))
        specs = [spec]
    since = None
    if args.since:
        try:
            since = zohovalues.parse_timestamp(args.since) if "T" in args.since else \
                dt.datetime.fromisoformat(args.since).replace(tzinfo=dt.UTC)
        except (zohovalues.InvalidValue, ValueError):
            raise Failure(f"--since {args.since!r} is not an ISO 8601 time such as 2025-11-13T08:40:00+03:00") from None
    kind = "full" if args.full else "stock" if args.stock else "incremental"
    item_ids = _item_ids(args, specs)
    require_schema(config)
    if args.details:
        return _sync_details(config, [s.name for s in specs])
    prepare_metrics_dir(fresh=False)
    logs.setup("WARNING" if config.log.level == "INFO" else config.log.level)
    # Each run's outcome is this command's own output (below): the sync module's warning that a run
    # failed would only repeat it on stderr, where a failure must be one line.
    logging.getLogger("tds_daemon.pull.pulls").setLevel(max(logging.ERROR, logging.getLogger().level))
    if len(specs) == 1:
        failures = [f for f in [_SyncCommand(config, kind, since, live=True).one(specs[0].name, item_ids)] if f]
    else:
        # Entities in two processes: decoding, converting and binding rows is Python work, and one
        # interpreter lock would leave the second core to PostgreSQL alone.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_sync_child_init, initargs=(config, kind, since)) as pool:
            failures = [f for f in pool.map(_sync_child_one, [s.name for s in specs]) if f]
    if failures:
        from tds_daemon.pull.zoho.client import QUOTA_SPENT_TEXT

        quota = [f for f in failures if QUOTA_SPENT_TEXT in f]
        if quota:  # the same reason for every entity: said once
            raise Failure(f"sync stopped for {len(failures)} of {len(specs)} entities: {quota[0]}")
        line = f"sync failed for {len(failures)} of {len(specs)} entities: " + "; ".join(failures)
        try:
            require_redis(config)
        except Failure as e:  # say once where the unreachable Redis came from
            line += f"; {e}"
        raise Failure(line)
    _wake_backfill(config, specs)
    return 0


def _item_ids(args, specs) -> list[str] | None:
    """``--id``: only with ``--stock`` and for products; the ids checked as the API checks them."""
    if not args.ids:
        return None
    from tds_daemon.pull import stockitems
    from tds_daemon.refusal import Refusal

    if not args.stock:
        raise Failure("--id goes with --stock: tds sync products --stock --id ID [--id ID ...]")
    if [s.name for s in specs] != [stockitems.ITEM.name]:
        raise Failure(f"--id is for products only (a stock refresh of chosen items), not {args.entity!r}")
    try:
        return stockitems.chosen(args.ids)
    except Refusal as e:
        raise Failure(f"--id: {e.message}") from None


def _wake_backfill(config: Config, specs) -> None:
    """Rows of this pull may wait for their whole objects: ask a running daemon's backfill to start now
    rather than at its next scheduled run (it reads within the day's budget; nothing if none waits)."""
    if all(s.lists_whole for s in specs):
        return
    from tds_daemon.apply.broker import make_broker
    from tds_daemon.apply.dispatch import Dispatcher
    from tds_daemon.pull.detail import DETAIL_ACTOR, DETAIL_QUEUE

    broker = make_broker(config)
    try:
        Dispatcher(broker, origin="cli").send_to(DETAIL_QUEUE, DETAIL_ACTOR, "cli")
    finally:
        broker.client.close()


def _sync_details(config: Config, names: list[str]) -> int:
    """``tds sync ENTITY|all --details``: read, in the foreground, the whole objects that rows still lack."""
    import logging

    from tds_daemon import logs
    from tds_daemon.apply.broker import redis_client
    from tds_daemon.pull import detail, images
    from tds_daemon.pull.zoho import ZohoClient
    from tds_daemon.store.db import make_engine

    prepare_metrics_dir(fresh=False)
    logs.setup("WARNING" if config.log.level == "INFO" else config.log.level)
    logging.getLogger("tds_daemon.pull.detail").setLevel(logging.WARNING)
    engine = make_engine(config, pool_size=4, application_name="tds-sync")
    client = ZohoClient(config, redis_client(config), purpose="manual", engine=engine)
    try:
        waiting = {n: e["waiting"] for n, e in detail.backlog(engine, config.database.entity_schema).items()
                   if n in names}
        total = sum(waiting.values()) + (images.backlog(engine, config.database.entity_schema)
                                         if images.ITEM.name in names else 0)
        progress = Progress(sys.stderr if sys.stderr.isatty() else sys.stdout)
        step = max(1, total // 20)

        def show(report) -> None:
            done = report.read + report.gone + report.refused + report.yielded + report.images_stored \
                + report.images_failed
            if progress.live or done % step == 0:
                progress.show("details", f"details: {done} of {total} objects, {report.requests} requests")

        report = detail.Backfill(config, engine, client).run(names=names, progress=show)
        left = sum(e["waiting"] for n, e in detail.backlog(engine, config.database.entity_schema).items()
                   if n in names)
    finally:
        client.close()
        engine.dispose()
    read = ", ".join(f"{n} {c}" for n, c in sorted(report.per_entity.items())) or "none"
    pictures = (f"; item images: {report.images_stored} stored, {report.images_failed} not storable"
                if report.images_stored or report.images_failed else "")
    progress.done("details", f"details: read {report.read} whole objects ({read}); {report.yielded} no longer needed, "
                  f"{report.gone} gone from Zoho, {report.refused} refused{pictures}; {report.requests} requests; "
                  f"{left} still waiting")
    if report.stopped == "already_running":
        raise Failure("details: a detail backfill is already running (the daemon's, or another tds sync --details); "
                      "try again when it ends")
    if report.stopped not in ("done", "limit"):
        raise Failure(f"details: stopped early ({report.stopped}): {report.error}")
    return 0


class _SyncCommand:
    """One process's share of `tds sync`: runs entities one after the other, prints one line each."""

    def __init__(self, config: Config, kind: str, since, live: bool):
        from tds_daemon.apply.broker import redis_client
        from tds_daemon.pull.zoho import ZohoClient
        from tds_daemon.store.db import make_engine

        self.config, self.kind, self.since = config, kind, since
        self.engine = make_engine(config, pool_size=8, application_name="tds-sync")
        # One client for every entity this process syncs: its connections and token are reused.
        self.client = ZohoClient(config, redis_client(config), purpose="manual", engine=self.engine)
        # Progress and results are output: stdout, unless stderr is a terminal for the live line
        # (one process only: several would overwrite each other's line).
        self.progress = Progress(sys.stderr if live and sys.stderr.isatty() else sys.stdout)

    def one(self, name: str, item_ids: list[str] | None = None) -> str | None:
        """Sync one entity (``item_ids``: only these items); the failure line, or None."""
        from tds_daemon.pull import launch

        progress = self.progress
        # Chosen items get a line each at the end: off a terminal, a line per read would only repeat them.
        shown = progress.live or not item_ids
        pulled = launch.pull(self.config, self.engine, self.client, name, self.kind, origin="cli", since=self.since,
                             progress=(lambda t: progress.update(name, t)) if shown else None, item_ids=item_ids)
        run_id, t, run = pulled.run_id, pulled.tally, pulled.run
        if item_ids:
            _show_items(progress, name, item_ids, (run or {}).get("item_results") or {})
        if pulled.error is not None:
            progress.done(name, f"{name}: FAILED: {pulled.error} [run {run_id}]")
            return f"{name}: {pulled.error} [run {run_id}]"
        if item_ids:
            progress.done(name, f"{name}: stock of {len(item_ids)} chosen items, {t.objects} read (created "
                          f"{t.created}, updated {t.updated}, unchanged {t.unchanged}, stale {t.stale}), "
                          f"{t.requests} requests, {run['duration_s']:.1f}s [run {run_id}]")
            return None
        progress.done(name, f"{name}: {run['kind']} sync {t.objects} objects in {t.pages} pages "
                      f"(created {t.created}, updated {t.updated}, unchanged {t.unchanged}, stale {t.stale}, "
                      f"deleted {t.deleted}), {t.requests} requests, {run['duration_s']:.1f}s [run {run_id}]")
        return None


def _show_items(progress: Progress, name: str, item_ids: list[str], results: dict[str, dict]) -> None:
    """One line per chosen item: what became of it, and its stock as Zoho gave it."""
    for item_id in item_ids:
        r = results.get(item_id)
        if r is None:
            line = "not reached (the run ended first)"
        elif "error" in r:
            line = f"{r['outcome']}: {r['error']}"
        else:
            line = f"{r['outcome']}; " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "outcome")
        progress.done(name, f"  {name} {item_id}: {line}")


_child: _SyncCommand | None = None


def _sync_child_init(config: Config, kind: str, since) -> None:
    global _child
    _child = _SyncCommand(config, kind, since, live=False)


def _sync_child_one(name: str) -> str | None:
    try:
        return _child.one(name)
    except Exception as e:  # even the bookkeeping failed (database gone): still one line
        return f"{name}: {described(e)}"
