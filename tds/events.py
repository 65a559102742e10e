"""``tds events tail`` and ``tds events replay``: the outbox read by cursor (and followed as it grows), and
a subscriber's dead letters listed and pushed again."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys

from tds.preflight import CONFIG_HELP, Failure, database_failure, load_config, require_schema
from tds_daemon import entities
from tds_daemon.config import Config
from tds_daemon.redaction import mask_url
from tds_daemon.subscribers import EVENT_TYPES, Subscriber, event_entities

DEFAULT_TAIL = 20
# NOTIFY normally wakes ``--follow`` at each commit; this bounds how late an event shows if one is lost
# (the listening connection reconnected by a proxy, say).
POLL_S = 10.0
_PREFIX = "tds.zoho."


def add_commands(sub) -> None:
    p = sub.add_parser("events", help="read the outbound events; replay a subscriber's dead letters")
    events_sub = p.add_subparsers(dest="events_command", required=True, metavar="tail|replay")
    t = events_sub.add_parser("tail", help="events after a cursor, oldest first; --follow for new ones")
    t.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    t.add_argument("--after", type=int, metavar="ID", help="start after this event id (default: the last --limit)")
    t.add_argument("--limit", type=int, metavar="N",
                   help=f"without --after: the last N events (default {DEFAULT_TAIL}); with it: at most N")
    t.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    t.add_argument("--type", metavar="T", help="only this type: entity.synced or sync.completed")
    t.add_argument("--entity", metavar="E", help="only this entity (name or alias, or product_image)")
    t.add_argument("--json", action="store_true", help="one JSON object a line, as GET /api/tds/events has them")
    t.set_defaults(func=cmd_tail)
    r = events_sub.add_parser("replay", help="push a subscriber's dead letters again (--list shows them)")
    r.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    r.add_argument("--subscriber", metavar="URL", help="only this subscriber (its URL, or its name)")
    r.add_argument("--event", type=int, action="append", metavar="ID", help="only this event id (repeatable)")
    r.add_argument("--all", action="store_true", help="every subscriber's dead letters (without --subscriber or "
                   "--event this must be said)")
    r.add_argument("--list", action="store_true", help="show the dead letters instead of replaying them")
    r.add_argument("--limit", type=int, default=100, metavar="N", help="--list shows at most N (default 100)")
    r.set_defaults(func=cmd_replay)


def _engine(config: Config):
    from tds_daemon.store.db import make_engine

    require_schema(config)
    return make_engine(config, pool_size=1, application_name="tds-events")


# -- tail

def _filters(args) -> dict:
    types = None
    if args.type:
        type_ = args.type if args.type.startswith(_PREFIX) else _PREFIX + args.type
        if type_ not in EVENT_TYPES:
            raise Failure(f"events tail: no event type {args.type[:60]!r}; known: "
                          f"{', '.join(t.removeprefix(_PREFIX) for t in EVENT_TYPES)}")
        types = [type_]
    names = None
    if args.entity:
        spec = entities.resolve(args.entity)
        name = spec.name if spec else args.entity if args.entity in event_entities() else None
        if name is None:
            raise Failure(f"events tail: no entity {args.entity[:60]!r}; known: {', '.join(event_entities())}")
        names = [name]
    return {"types": types, "entities": names}


def line(event: dict) -> str:
    """One event as a person reads it: id, time (UTC), type, entity, Zoho id, and what happened."""
    data = event["data"]
    at = dt.datetime.fromisoformat(event["timestamp"]).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if event["type"] == EVENT_TYPES[0]:
        changed = list(data.get("changed") or {})
        what = f"{data.get('action')} by {data.get('source')}"
        if changed and data.get("action") != "created":
            what += ": " + ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
    else:
        counts = ", ".join(f"{k} {v}" for k, v in (data.get("counts") or {}).items() if v)
        what = f"{data.get('kind')} pull, run {data.get('run_id')}: {data.get('outcome')}"
        what += f" ({counts})" if counts else ""
        what += f": {data['error']}" if data.get("error") else ""
    return (f"{event['id']:>8}  {at}  {event['type'].removeprefix(_PREFIX):<14}  {data.get('entity') or '-':<16}  "
            f"{data.get('zoho_id') or '-':<20}  {what}")


class _Stop(Exception):
    """SIGTERM: end ``--follow`` as Ctrl-C does."""


def _stop(_signum, _frame):
    raise _Stop


def _print(events: list[dict], as_json: bool) -> None:
    for e in events:
        print(json.dumps(e, ensure_ascii=False) if as_json else line(e), flush=True)


def _drain(engine, cursor: int, filters: dict, as_json: bool, limit: int | None = None) -> tuple[int, bool]:
    """Print the events after ``cursor`` (at most ``limit``); the new cursor, and whether more are left."""
    from tds_daemon.publish import feed

    left = limit
    while left is None or left > 0:
        with engine.connect() as conn:
            page, cursor = feed.read(conn, cursor, feed.MAX_LIMIT if left is None else min(left, feed.MAX_LIMIT),
                                     **filters)
        _print(page, as_json)
        if left is not None:
            left -= len(page)
        if not page:
            return cursor, False
    with engine.connect() as conn:
        return cursor, bool(feed.read(conn, cursor, 1, **filters)[0])


def _follow(engine, cursor: int, filters: dict, as_json: bool) -> None:
    """Print each new event as it is committed, until interrupted. A connection of its own listens: it is in
    autocommit and LISTENing, so it is closed at the end, never handed back to the pool."""
    import select

    from tds_daemon.apply.events import CHANNEL

    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.set_isolation_level(0)
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        while True:  # LISTEN comes first: what commits from now on wakes the next wait
            cursor, _ = _drain(engine, cursor, filters, as_json)
            if select.select([conn], [], [], POLL_S)[0]:
                conn.poll()
                conn.notifies.clear()
    finally:
        raw.invalidate()


def cmd_tail(args) -> int:
    import psycopg2
    from sqlalchemy import exc

    from tds_daemon.publish import feed

    config = load_config(args)
    if args.after is not None and args.after < 0:
        raise Failure("events tail: --after takes an event id (0 or more)")
    if args.limit is not None and args.limit < 1:
        raise Failure("events tail: --limit must be at least 1")
    filters = _filters(args)
    engine = _engine(config)
    # Both set here: a command started in the background by a shell inherits SIGINT ignored.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        cursor = args.after
        if cursor is None:
            with engine.connect() as conn:
                cursor = feed.last_cursor(conn, args.limit or DEFAULT_TAIL, **filters)
        cursor, more = _drain(engine, cursor, filters, args.json, args.limit if args.after is not None else None)
        if args.follow:
            _follow(engine, cursor, filters, args.json)
        elif more:
            print(f"tds: more events after {cursor}: tds events tail --after {cursor}", file=sys.stderr)
    except (KeyboardInterrupt, _Stop):
        return 0
    except BrokenPipeError:  # the reader (head, less) has gone: nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (exc.OperationalError, psycopg2.OperationalError) as e:
        raise database_failure(e, config) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        engine.dispose()
    return 0


# -- replay

def _which(config: Config, engine, wanted: str | None) -> tuple[str | None, Subscriber | None]:
    """The URL a ``--subscriber`` names (a configured URL or name, or a URL with dead letters) and its
    configuration; a Failure for one that is neither."""
    from tds_daemon.publish import pusher

    if wanted is None:
        return None, None
    for s in config.subscribers:
        if wanted in (s.url, s.name, s.label):
            return s.url, s
    if not pusher.dead_letters(engine, wanted, limit=1):
        known = ", ".join(s.label for s in config.subscribers) or "none"
        raise Failure(f"events replay: no subscriber {mask_url(wanted)!r} is configured and it has no dead letters "
                      f"(configured: {known}; `tds events replay --list` shows every dead letter)")
    return wanted, None


def _label(config: Config, url: str) -> str:
    """How ``--list`` names a subscriber: its label, or for one no longer configured its URL (password masked),
    the only way ``--subscriber`` can name it."""
    for s in config.subscribers:
        if s.url == url:
            return s.label
    return f"{mask_url(url)} (not configured)"


def _when(at) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def _listing(config: Config, rows: list[dict], event_ids: list[int] | None) -> str:
    rows = [r for r in rows if not event_ids or r["event_id"] in event_ids]
    if not rows:
        return "no dead letters"
    labels = [_label(config, r["url"]) for r in rows]
    w = max(len("subscriber"), *map(len, labels))
    out = [f"{'subscriber':<{w}}  {'event':>8}  {'tries':>5}  {'first failed':<20}  {'last failed':<20}  last error"]
    for label, r in zip(labels, rows, strict=True):
        asked = f"  (replay asked {_when(r['replay_requested_at'])})" if r["replay_requested_at"] else ""
        out.append(f"{label:<{w}}  {r['event_id']:>8}  {r['attempts']:>5}  {_when(r['first_failed_at']):<20}  "
                   f"{_when(r['failed_at']):<20}  {r['last_error']}{asked}")
    return "\n".join(out)


def cmd_replay(args) -> int:
    from sqlalchemy import exc

    from tds_daemon.publish import pusher

    config = load_config(args)
    if args.limit < 1:
        raise Failure("events replay: --limit must be at least 1")
    if args.event and any(i < 1 for i in args.event):
        raise Failure("events replay: --event takes an event id as --list shows it (a positive integer)")
    if not (args.list or args.subscriber or args.event or args.all):
        raise Failure("events replay: say which: --subscriber URL|NAME, --event ID, or --all (every dead letter)")
    engine = _engine(config)
    try:
        url, sub = _which(config, engine, args.subscriber)
        if args.list:
            print(_listing(config, pusher.dead_letters(engine, url, args.limit), args.event))
            return 0
        n = pusher.replay(engine, url, args.event)
    except (exc.OperationalError, exc.InterfaceError) as e:
        raise database_failure(e, config) from None
    finally:
        engine.dispose()
    who = _label(config, url) if url else "every subscriber"
    events_ = f" (event {', '.join(map(str, args.event))})" if args.event else ""
    if not n:
        print(f"no dead letters to replay: {who}{events_} has none not already asked for")
        return 0
    said = f"{n} dead letter(s) of {who}{events_} marked for replay: tds run pushes them again, oldest first"
    if url and sub is None:
        said += f"; {mask_url(url)} is not configured, so nothing pushes them until it is"
    print(said)
    return 0
