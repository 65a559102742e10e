"""``tds dlq list`` and ``tds dlq replay``: the dead letters read, and sent back to be applied again."""

from __future__ import annotations

import shutil

from tds.preflight import CONFIG_HELP, Failure, database_failure, load_config, prepare_metrics_dir, require_schema
from tds_daemon.config import Config

# The API's words for a bad selector, in the command line's terms.
_DLQ_CLI_MESSAGES = {
    "conflicting_selectors": "--id and --all exclude each other",
    "no_selector": "say which dead letters to replay: --id ID, --entity E or --all (nothing is replayed by default)",
    "invalid_ids": "--id takes a sync item id as `tds dlq list` shows it (a positive integer)",
}


def add_commands(sub) -> None:
    p = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq_sub = p.add_subparsers(dest="dlq_command", required=True, metavar="list|replay")
    for name, func, help_ in (("list", cmd_dlq_list, "dead letters with their error, attempts and failures"),
                              ("replay", cmd_dlq_replay, "send dead letters back to pending and apply them again")):
        q = dlq_sub.add_parser(name, help=help_)
        q.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
        q.add_argument("--entity", metavar="E", help="only this entity (name or alias)")
        q.set_defaults(func=func)
        if name == "list":
            q.add_argument("--limit", type=int, default=100, metavar="N", help="show the N most recent (default 100)")
            q.add_argument("--zoho-id", metavar="ID", help="only the dead letters of this Zoho object")
            q.add_argument("--json", action="store_true", help="machine-readable output")
        else:
            q.add_argument("--id", type=int, action="append", metavar="ID", help="a dead letter's id (repeatable)")
            q.add_argument("--all", action="store_true", help="every dead letter (of --entity, if given)")


def _engine(config: Config):
    from tds_daemon.store.db import make_engine

    require_schema(config)
    return make_engine(config, pool_size=1, application_name="tds-dlq")


def cmd_dlq_list(args) -> int:
    import json

    from sqlalchemy import exc

    from tds_daemon.care import dlq

    config = load_config(args)
    if args.limit < 1:
        raise Failure("dlq list: --limit must be at least 1")
    try:
        entity = dlq.resolve_entity(args.entity)
    except dlq.InvalidSelector as e:
        raise Failure(f"dlq list: {e.message}") from None
    engine = _engine(config)
    try:
        listing = dlq.list_items(engine, entity=entity, zoho_id=args.zoho_id, limit=args.limit)
    except exc.OperationalError as e:
        raise database_failure(e, config) from None
    finally:
        engine.dispose()
    width = max(40, shutil.get_terminal_size((110, 24)).columns - 10)
    print(json.dumps(listing, indent=2) if args.json else dlq.render(listing, entity, width, args.zoho_id))
    return 0


def cmd_dlq_replay(args) -> int:
    from sqlalchemy import exc

    config = load_config(args)
    prepare_metrics_dir(fresh=False)  # before dispatch imports prometheus_client
    from tds_daemon.apply.broker import make_broker
    from tds_daemon.apply.dispatch import Dispatcher
    from tds_daemon.care import dlq

    try:
        selector = dlq.selector(args.id, args.entity, args.all)
    except dlq.InvalidSelector as e:
        raise Failure(f"dlq replay: {_DLQ_CLI_MESSAGES.get(e.code, e.message)}") from None
    engine = _engine(config)
    try:
        result = dlq.replay(engine, Dispatcher(make_broker(config), origin="dlq"), selector)
    except exc.OperationalError as e:
        raise database_failure(e, config) from None
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
