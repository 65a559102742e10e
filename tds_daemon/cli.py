"""The ``tds`` command line.

Operator errors (bad configuration, database unreachable, unknown entity) end with one readable
line on stderr and a non-zero exit, never a traceback. Components in other packages (the worker in
``actors``, the supervisor in ``supervisor``) are imported by name when their command runs, so the
core library never depends on them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile

from tds_daemon import __version__
from tds_daemon.config import DEFAULT_PATH, SCHEMA, Config, ConfigError, load, resolve_path
from tds_daemon.oneline import described, first_line


class Failure(Exception):
    """An operator-facing failure: printed as one line, exit status 1."""


def prepare_metrics_dir(fresh: bool) -> str:
    """Set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported anywhere in this process."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="tds-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    elif fresh and os.path.isdir(path):
        # A new daemon must not inherit a dead one's counters.
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    os.makedirs(path, exist_ok=True)
    return path


def _load(args) -> Config:
    try:
        return load(args.config)
    except ConfigError as e:
        for key, why in e.problems:
            print(f"tds: config: {key}: {why}", file=sys.stderr)
        raise SystemExit(1) from None


def _origin(config: Config, key: str) -> str:
    """Where ``key`` came from and how to point TDS at another configuration, for an unreachable-service line."""
    source = config.sources.get(key, "default")
    if config.source == "defaults":
        came = "is the default" if source == "default" else f"is from {source}"
        return (f"{key} {came}: no configuration file was given with --config or $TDS_CONFIG, and {DEFAULT_PATH} "
                "does not exist; point at one with --config PATH or TDS_CONFIG=PATH")
    came = f"from {source}" if source != "default" else f"the default, {config.source} does not set it"
    return f"{key} {came}; another configuration: --config PATH or TDS_CONFIG=PATH"


def cmd_check_config(args) -> int:
    path = resolve_path(args.config, os.environ)
    try:
        config = load(args.config)
    except ConfigError as e:
        for key, why in e.problems:
            print(f"{key}: {why}", file=sys.stderr)
        print(f"configuration {path or '(defaults)'} is invalid: {len(e.problems)} problem(s)", file=sys.stderr)
        return 1
    gaps = config.gaps()
    if len(gaps) == 1:
        print(f"configuration {config.source} is valid, but {gaps[0]}")
    else:
        print(f"configuration {config.source} is valid" + (", but:" if gaps else ""))
        for gap in gaps:
            print(f"  - {gap}")
    if args.verbose:
        shown = config.redacted()
        for s in SCHEMA:
            print(f"  {s.name} = {shown[s.name]!r}  ({config.sources[s.name]})")
    return 0


def cmd_migrate(args) -> int:
    from tds_daemon.store.db import DatabaseUnavailable
    from tds_daemon.store.migrate import SchemaNewer, upgrade

    config = _load(args)
    try:
        before, after = upgrade(config)
    except DatabaseUnavailable as e:
        raise Failure(f"{e}; is PostgreSQL running? ({_origin(config, 'database.url')})") from None
    except SchemaNewer as e:
        raise Failure(str(e)) from None
    if before == after:
        print(f"schema already at {after}")
    else:
        print(f"schema migrated from {before or 'empty'} to {after}")
    return 0


def _require_schema(config: Config) -> None:
    from sqlalchemy import exc

    from tds_daemon.store.db import make_engine
    from tds_daemon.store.migrate import current_revision, head_revision, known

    engine = make_engine(config, pool_size=1, application_name="tds-check")
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
    except exc.OperationalError as e:
        raise Failure(f"cannot connect to PostgreSQL at {engine.url.render_as_string()}: "
                      f"{first_line(e.orig)} ({_origin(config, 'database.url')})") from None
    finally:
        engine.dispose()
    head = head_revision()
    if not known(current):
        raise Failure(f"database schema is at {current}, newer than this TDS ({head}): install the TDS that "
                      "migrated it, or downgrade with it (docs/OPERATIONS.md)")
    if current != head:
        raise Failure(f"database schema is at {current or 'nothing'}, this TDS needs {head}: run `tds migrate`")


def _redis_unreachable(config: Config, e: Exception) -> str:
    """The one line for a Redis that does not answer: its URL (password masked), why, and where it came from."""
    from tds_daemon.config import mask_url

    reason = first_line(e)
    return f"cannot reach Redis at {mask_url(config.redis.url)}: {reason} ({_origin(config, 'redis.url')})"


def _require_redis(config: Config) -> None:
    """Return if Redis answers a PING, else raise a Failure naming where redis.url came from."""
    import redis

    from tds_daemon.apply.broker import redis_client

    client = redis_client(config)
    try:
        client.ping()
    except redis.RedisError as e:
        raise Failure(_redis_unreachable(config, e)) from None
    finally:
        client.close()


def _die_with_parent() -> None:
    """Under ``tds run``, stop (SIGTERM: gracefully) if the supervisor itself is killed outright.

    systemd's KillMode=mixed would clean up anyway; this covers a SIGKILLed ``tds run`` elsewhere
    (a terminal, a test harness), which must not leave an API or workers running unsupervised.
    """
    parent = os.environ.get("TDS_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(parent):  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def cmd_api(args) -> int:
    _die_with_parent()
    config = _load(args)
    prepare_metrics_dir(fresh=False)
    from tds_daemon import logs
    from tds_daemon.api import server

    logs.setup(config.log.level, logs.role_from_env("api"))
    server.run(config, args.config)
    return 0


def cmd_worker(args) -> int:
    _die_with_parent()
    config = _load(args)
    prepare_metrics_dir(fresh=False)
    from tds_daemon import logs

    logs.setup(config.log.level, logs.role_from_env("worker"))
    return importlib.import_module("actors.worker").run(config)


def cmd_run(args) -> int:
    config = _load(args)
    _require_schema(config)
    prepare_metrics_dir(fresh=True)
    from tds_daemon import logs

    logs.setup(config.log.level, "supervisor")
    return importlib.import_module("supervisor.run").run(config, resolve_path(args.config, os.environ))


def cmd_simulator(args) -> int:
    from tds_daemon.simulator import server
    from tds_daemon.simulator.faults import Faults
    from tds_daemon.simulator.settings import Settings, parse_counts
    from tds_daemon.simulator.sim import Simulator

    try:
        settings = Settings(seed=args.seed, scale=args.scale, counts=parse_counts(args.count),
                            rate_limit=args.rate_limit, daily_limit=args.daily_limit,
                            max_concurrency=args.max_concurrency, refresh_limit=args.refresh_limit,
                            organization_id=args.organization_id, client_id=args.client_id,
                            client_secret=args.client_secret, refresh_token=args.refresh_token, verbose=args.verbose)
        faults = Faults(seed=args.seed, error_rate=args.error_rate, latency_ms=args.latency_ms,
                        token_ttl_s=args.token_ttl)
    except ValueError as e:
        raise Failure(f"simulator: {e}") from None
    try:
        return server.serve(Simulator(settings, faults), args.host, args.port)
    except OSError as e:
        raise Failure(f"simulator: cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None


def cmd_sync(args) -> int:
    import datetime as dt
    import logging

    from tds_daemon import entities, logs, zohovalues

    config = _load(args)
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
    _require_schema(config)
    if args.details:
        return _sync_details(config, [s.name for s in specs])
    prepare_metrics_dir(fresh=False)
    logs.setup("WARNING" if config.log.level == "INFO" else config.log.level)
    # Each run's outcome is this command's own output (below): the sync module's warning that a run
    # failed would only repeat it on stderr, where a failure must be one line.
    logging.getLogger("tds_daemon.pull.pulls").setLevel(max(logging.ERROR, logging.getLogger().level))
    if len(specs) == 1:
        failures = [f for f in [_SyncCommand(config, kind, since, live=True).one(specs[0].name)] if f]
    else:
        # Entities in two processes: decoding, converting and binding rows is Python work, and one
        # interpreter lock would leave the second core to PostgreSQL alone.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_sync_child_init, initargs=(config, kind, since)) as pool:
            failures = [f for f in pool.map(_sync_child_one, [s.name for s in specs]) if f]
    if failures:
        line = f"sync failed for {len(failures)} of {len(specs)} entities: " + "; ".join(failures)
        try:
            _require_redis(config)
        except Failure as e:  # say once where the unreachable Redis came from
            line += f"; {e}"
        raise Failure(line)
    _wake_backfill(config, specs)
    return 0


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
    from tds_daemon.progress import Progress
    from tds_daemon.pull import detail, images
    from tds_daemon.pull.zoho import ZohoClient
    from tds_daemon.store.db import make_engine

    prepare_metrics_dir(fresh=False)
    logs.setup("WARNING" if config.log.level == "INFO" else config.log.level)
    logging.getLogger("tds_daemon.pull.detail").setLevel(logging.WARNING)
    engine = make_engine(config, pool_size=4, application_name="tds-sync")
    client = ZohoClient(config, redis_client(config), purpose="manual")
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
        from tds_daemon.progress import Progress
        from tds_daemon.pull.zoho import ZohoClient
        from tds_daemon.store.db import make_engine

        self.config, self.kind, self.since = config, kind, since
        self.engine = make_engine(config, pool_size=8, application_name="tds-sync")
        # One client for every entity this process syncs: its connections and token are reused.
        self.client = ZohoClient(config, redis_client(config), purpose="manual")
        # Progress and results are output: stdout, unless stderr is a terminal for the live line
        # (one process only: several would overwrite each other's line).
        self.progress = Progress(sys.stderr if live and sys.stderr.isatty() else sys.stdout)

    def one(self, name: str) -> str | None:
        """Sync one entity; the failure line, or None."""
        import logging

        from tds_daemon import entities
        from tds_daemon.pull import runs
        from tds_daemon.pull.pulls import Syncer, SyncError

        spec, progress = entities.get(name), self.progress
        run_id = runs.create(self.engine, name, self.kind, origin="cli", since=self.since)
        runs.start(self.engine, run_id)
        try:
            t = Syncer(self.config, self.engine, self.client).run(run_id, spec, self.kind, self.since,
                                                            lambda t: progress.update(name, t))
            run = runs.get(self.engine, run_id)
            progress.done(name, f"{name}: {run['kind']} sync {t.objects} objects in {t.pages} pages "
                          f"(created {t.created}, updated {t.updated}, unchanged {t.unchanged}, stale {t.stale}, "
                          f"deleted {t.deleted}), {t.requests} requests, {run['duration_s']:.1f}s [run {run_id}]")
            return None
        except SyncError as e:
            error = str(e)
        except Exception as e:  # Redis or PostgreSQL gone mid-run: the run recorded it; one line, no traceback
            logging.getLogger(__name__).debug("sync run %s raised", run_id, exc_info=True)
            error = described(e)
        progress.done(name, f"{name}: FAILED: {error} [run {run_id}]")
        return f"{name}: {error} [run {run_id}]"


_child: _SyncCommand | None = None


def _sync_child_init(config: Config, kind: str, since) -> None:
    global _child
    _child = _SyncCommand(config, kind, since, live=False)


def _sync_child_one(name: str) -> str | None:
    try:
        return _child.one(name)
    except Exception as e:  # even the bookkeeping failed (database gone): still one line
        return f"{name}: {described(e)}"


def cmd_trace(args) -> int:
    import json

    from sqlalchemy import exc

    from tds_daemon.care import trace
    from tds_daemon.store.db import make_engine

    config = _load(args)
    try:
        trace.resolve_entity(args.entity)
    except trace.TraceError as e:
        raise Failure(f"trace: {e.message}") from None
    _require_schema(config)
    engine = make_engine(config, pool_size=1, application_name="tds-trace")
    try:
        story = trace.story(engine, config.database.entity_schema, args.entity, args.zoho_id)
    except trace.TraceError as e:
        raise Failure(f"trace: {e.message}") from None
    except exc.OperationalError as e:
        raise _database_failure(e) from None
    finally:
        engine.dispose()
    print(json.dumps(story, indent=2, ensure_ascii=False) if args.json else trace.render(story))
    return 0


def cmd_status(args) -> int:
    from sqlalchemy import exc

    from tds_daemon import status
    from tds_daemon.store.db import make_engine

    config = _load(args)
    _require_schema(config)
    engine = make_engine(config, pool_size=1, application_name="tds-status")
    breakers = _breaker_states(config)
    try:
        state = status.collect(engine, breakers, _budget_state(config), _detail_report(config, engine))
    except exc.OperationalError as e:
        raise _database_failure(e, config) from None
    finally:
        engine.dispose()
    print(status.to_json(state) if args.json else status.render(state))
    if breakers is None:
        try:
            _require_redis(config)
        except Failure as e:
            print(f"tds: {e}", file=sys.stderr)
    return 0


def _breaker_states(config: Config) -> list[dict] | None:
    import redis

    from tds_daemon.guard.breakers import Breakers, redis_for_breakers

    client = redis_for_breakers(config)
    try:
        return [b.as_json() for b in Breakers.from_config(config, client).statuses()]
    except redis.RedisError:
        return None
    finally:
        client.close()


def _budget_state(config: Config) -> dict | None:
    import redis

    from tds_daemon.guard.breakers import redis_for_breakers
    from tds_daemon.pull.zoho.budget import Budget

    client = redis_for_breakers(config)
    try:
        return Budget.from_config(config, client).state().as_json()
    except redis.RedisError:
        return None
    finally:
        client.close()


def _detail_report(config: Config, engine) -> dict:
    import redis

    from tds_daemon.guard.breakers import redis_for_breakers
    from tds_daemon.pull import detail
    from tds_daemon.pull.zoho.budget import Budget

    client = redis_for_breakers(config)
    try:
        return detail.progress_report(engine, config, Budget.from_config(config, client))
    except redis.RedisError:
        return detail.progress_report(engine, config, None)
    finally:
        client.close()


def _dlq_engine(config: Config):
    from tds_daemon.store.db import make_engine

    _require_schema(config)
    return make_engine(config, pool_size=1, application_name="tds-dlq")


def _database_failure(e, config: Config) -> Failure:
    return Failure(f"cannot read the database: {first_line(getattr(e, 'orig', e))} "
                   f"({_origin(config, 'database.url')})")


def cmd_dlq_list(args) -> int:
    import json

    from sqlalchemy import exc

    from tds_daemon.care import dlq

    config = _load(args)
    if args.limit < 1:
        raise Failure("dlq list: --limit must be at least 1")
    try:
        entity = dlq.resolve_entity(args.entity)
    except dlq.InvalidSelector as e:
        raise Failure(f"dlq list: {e.message}") from None
    engine = _dlq_engine(config)
    try:
        listing = dlq.list_items(engine, entity=entity, zoho_id=args.zoho_id, limit=args.limit)
    except exc.OperationalError as e:
        raise _database_failure(e, config) from None
    finally:
        engine.dispose()
    width = max(40, shutil.get_terminal_size((110, 24)).columns - 10)
    print(json.dumps(listing, indent=2) if args.json else dlq.render(listing, entity, width, args.zoho_id))
    return 0


# The API's words for a bad selector, in the command line's terms.
_DLQ_CLI_MESSAGES = {
    "conflicting_selectors": "--id and --all exclude each other",
    "no_selector": "say which dead letters to replay: --id ID, --entity E or --all (nothing is replayed by default)",
    "invalid_ids": "--id takes a sync item id as `tds dlq list` shows it (a positive integer)",
}


def cmd_dlq_replay(args) -> int:
    from sqlalchemy import exc

    config = _load(args)
    prepare_metrics_dir(fresh=False)  # before dispatch imports prometheus_client
    from tds_daemon.apply.broker import make_broker
    from tds_daemon.apply.dispatch import Dispatcher
    from tds_daemon.care import dlq

    try:
        selector = dlq.selector(args.id, args.entity, args.all)
    except dlq.InvalidSelector as e:
        raise Failure(f"dlq replay: {_DLQ_CLI_MESSAGES.get(e.code, e.message)}") from None
    engine = _dlq_engine(config)
    try:
        result = dlq.replay(engine, Dispatcher(make_broker(config), origin="dlq"), selector)
    except exc.OperationalError as e:
        raise _database_failure(e, config) from None
    finally:
        engine.dispose()
    ids = result.replayed_ids
    shown = ", ".join(map(str, ids[:20])) + (", …" if len(ids) > 20 else "")
    line = (f"replayed {result.replayed} dead letter(s) (ids {shown})" if ids
            else f"no dead letters to replay ({selector.describe()})")
    if result.skipped:
        line += (f"; skipped {result.skipped} not in dead_letter (already replayed, completed or unknown: "
                 f"ids {', '.join(map(str, result.skipped_ids))})")
    if result.undispatched:
        line += (f"; {result.undispatched} not sent because Redis did not answer: the workers' recovery sweep "
                 "sends them when it does")
    print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tds", description="Zoho to PostgreSQL sync daemon")
    parser.add_argument("--version", action="version", version=f"tds {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help_):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", metavar="PATH", help="TOML file (default: $TDS_CONFIG, /etc/tds/tds.toml)")
        p.set_defaults(func=func)
        return p

    command("run", cmd_run, "the daemon: API server and worker processes")
    command("api", cmd_api, "the API server alone, in the foreground")
    command("worker", cmd_worker, "one worker process, in the foreground")
    command("migrate", cmd_migrate, "bring the database schema to the current version")
    p = command("sync", cmd_sync, "pull from Zoho now, in the foreground")
    p.add_argument("entity", help="an entity name or alias, or 'all'")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--full", action="store_true", help="every object, and detect deletions")
    how.add_argument("--since", metavar="ISO8601", help="objects modified since this time")
    how.add_argument("--stock", action="store_true", help="only the stock fields of items")
    how.add_argument("--details", action="store_true", help="read the whole objects that rows still lack "
                     "(one Zoho call each, counted against the day's budget and allowed past it)")
    p = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq_sub = p.add_subparsers(dest="dlq_command", required=True, metavar="list|replay")
    for name, func, help_ in (("list", cmd_dlq_list, "dead letters with their error, attempts and failures"),
                              ("replay", cmd_dlq_replay, "send dead letters back to pending and apply them again")):
        q = dlq_sub.add_parser(name, help=help_)
        q.add_argument("--config", metavar="PATH", help="TOML file (default: $TDS_CONFIG, /etc/tds/tds.toml)")
        q.add_argument("--entity", metavar="E", help="only this entity (name or alias)")
        q.set_defaults(func=func)
        if name == "list":
            q.add_argument("--limit", type=int, default=100, metavar="N", help="show the N most recent (default 100)")
            q.add_argument("--zoho-id", metavar="ID", help="only the dead letters of this Zoho object")
            q.add_argument("--json", action="store_true", help="machine-readable output")
        else:
            q.add_argument("--id", type=int, action="append", metavar="ID", help="a dead letter's id (repeatable)")
            q.add_argument("--all", action="store_true", help="every dead letter (of --entity, if given)")
    p = command("trace", cmd_trace, "the story of one object: its row, deliveries, sync items, pulls, image")
    p.add_argument("entity", help="an entity name or alias")
    p.add_argument("zoho_id", help="the object's Zoho id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("status", cmd_status, "queue states per entity, the last sync runs and open alerts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("check-config", cmd_check_config, "validate the configuration")
    p.add_argument("-v", "--verbose", action="store_true", help="show every value (secrets hidden)")
    p = sub.add_parser("simulator", help="a local Zoho stand-in (OAuth, Books v3, Inventory v1, webhooks)")
    p.set_defaults(func=cmd_simulator)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--seed", type=int, default=1, help="same seed, same objects")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies the default volumes (1,312 items, ...)")
    p.add_argument("--count", action="append", default=[], metavar="ENTITY=N", help="volume of one entity")
    p.add_argument("--rate-limit", type=int, default=100, help="requests/min per app per organization; 0 = off")
    p.add_argument("--daily-limit", type=int, default=0,
                   help="requests per day per organization, all apps together (429 code 45); 0 = off")
    p.add_argument("--max-concurrency", type=int, default=0, metavar="N",
                   help="requests of the organization in flight at once, all apps together; 0 = off")
    p.add_argument("--refresh-limit", type=int, default=10, help="access tokens per refresh token per 10 min")
    p.add_argument("--token-ttl", type=int, default=3600, metavar="SECONDS", help="access token lifetime")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of API calls answered 500/503")
    p.add_argument("--latency-ms", type=int, default=0, help="added to every API answer")
    p.add_argument("--organization-id", default="600000001")
    p.add_argument("--client-id", default="sim-client")
    p.add_argument("--client-secret", default="sim-secret")
    p.add_argument("--refresh-token", default="sim-refresh")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Failure as e:
        print(f"tds: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())



