"""``tds trace``: the story of one object, from its row back through deliveries, sync items and pulls."""

from __future__ import annotations

from tds.preflight import Failure, command, database_failure, load_config, require_schema


def add_command(sub) -> None:
    p = command(sub, "trace", cmd_trace, "the story of one object: its row, deliveries, sync items, pulls, image")
    p.add_argument("entity", help="an entity name or alias")
    p.add_argument("zoho_id", help="the object's Zoho id")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_trace(args) -> int:
    import json

    from sqlalchemy import exc

    from tds_daemon.care import trace
    from tds_daemon.store.db import make_engine

    config = load_config(args)
    try:
        trace.resolve_entity(args.entity)
    except trace.TraceError as e:
        raise Failure(f"trace: {e.message}") from None
    require_schema(config)
    engine = make_engine(config, pool_size=1, application_name="tds-trace")
    try:
        story = trace.story(engine, config.database.entity_schema, args.entity, args.zoho_id)
    except trace.TraceError as e:
        raise Failure(f"trace: {e.message}") from None
    except exc.OperationalError as e:
        raise database_failure(e, config) from None
    finally:
        engine.dispose()
    print(json.dumps(story, indent=2, ensure_ascii=False) if args.json else trace.render(story))
    return 0
