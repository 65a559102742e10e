"""``tds status``: what an operator asks first — queue states per entity, dead letters, last runs, alerts,
breakers, the day's Zoho calls and the detail backlog; gathered, then printed as text or JSON."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from tds.preflight import Failure, command, database_failure, load_config, require_redis, require_schema
from tds_daemon.config import Config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

RUN_FIELDS = ("id", "kind", "status", "finished_at", "objects", "error")
ALERT_LINES = 5  # the newest open alerts shown


def add_command(sub) -> None:
    p = command(sub, "status", cmd_status, "queue states per entity, the last sync runs and open alerts")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_status(args) -> int:
    from sqlalchemy import exc

    from tds_daemon.store.db import make_engine

    config = load_config(args)
    require_schema(config)
    engine = make_engine(config, pool_size=1, application_name="tds-status")
    breakers = _breaker_states(config)
    try:
        state = collect(engine, breakers, _budget_state(config, engine), _detail_report(config, engine))
    except exc.OperationalError as e:
        raise database_failure(e, config) from None
    finally:
        engine.dispose()
    print(to_json(state) if args.json else render(state))
    if breakers is None:
        try:
            require_redis(config)
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


def _budget_state(config: Config, engine: Engine) -> dict | None:
    import redis

    from tds_daemon.guard.breakers import redis_for_breakers
    from tds_daemon.pull.zoho.budget import Budget

    client = redis_for_breakers(config)
    try:
        return Budget.from_config(config, client, engine).state().as_json()
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
        return detail.progress_report(engine, config, Budget.from_config(config, client, engine))
    except redis.RedisError:
        return detail.progress_report(engine, config, None)
    finally:
        client.close()


def collect(engine: Engine, breakers: list[dict] | None = None, budget: dict | None = None,
            detail: dict | None = None) -> dict:
    """Queues and last runs per entity, open alerts; ``breakers`` (their JSON) and ``budget`` (the day's Zoho
    calls, ``BudgetState.as_json``) when Redis answered, else None; ``detail``: the backfill's progress
    (``tds_daemon.pull.detail.progress_report``)."""
    # Imported here, as every command's core modules: they load tds_daemon.metrics, whose directory
    # the command prepares first (``prepare_metrics_dir``).
    from sqlalchemy import select

    from tds_daemon import entities
    from tds_daemon.apply import syncqueue
    from tds_daemon.guard import alerts
    from tds_daemon.pull import runs
    from tds_daemon.store.schema import STATUSES, healer_runs, stats_runs

    with engine.connect() as conn:
        counts = syncqueue.counts(conn)
        latest = runs.latest_per_entity(conn)
        open_alerts = {**alerts.open_counts(conn), "items": alerts.recent(conn, status="open", limit=ALERT_LINES)}
        healer = conn.execute(select(healer_runs.c.finished_at, healer_runs.c.report)
                              .order_by(healer_runs.c.id.desc()).limit(1)).first()
        stats = conn.execute(select(stats_runs.c.finished_at, stats_runs.c.overall_match)
                             .order_by(stats_runs.c.id.desc()).limit(1)).first()
    out = {}
    for spec in entities.ENTITIES:
        run = latest.get(spec.name)
        out[spec.name] = {
            "queue": {s: counts.get((spec.name, s), 0) for s in STATUSES},
            "last_run": {k: run[k] for k in RUN_FIELDS} if run else None,
            "detail_backlog": ((detail or {}).get("entities", {}).get(spec.name) or {}).get("waiting", 0),
        }
    last_healer = last_stats = None
    if healer:
        report = healer.report
        last_healer = {"finished_at": healer.finished_at.isoformat(),
                       "sent_again": sum(report.get("redispatched", {}).values()),
                       "dead_letters_retried": report.get("dead_letters_retried", 0),
                       "errors": len(report.get("errors", []))}
    if stats:
        last_stats = {"finished_at": stats.finished_at.isoformat(),
                      "overall_match": float(stats.overall_match) if stats.overall_match is not None else None}
    return {"entities": out, "breakers": breakers, "alerts": open_alerts, "healer": last_healer,
            "stats": last_stats, "zoho_budget": budget, "detail": detail}


def render(status: dict) -> str:
    lines = [f"{'entity':<17} {'pending':>8} {'process':>8} {'failed':>7} {'dead':>6} {'done':>9} {'detail':>7}"
             "  last sync"]
    for name, e in status["entities"].items():
        q, run = e["queue"], e["last_run"]
        last = (f"{run['kind']} {run['status']} {run['finished_at'] or ''} ({run['objects']} objects)"
                + (f": {run['error']}" if run["error"] else "")) if run else "never"
        lines.append(f"{name:<17} {q['pending']:>8} {q['processing']:>8} {q['failed']:>7} {q['dead_letter']:>6} "
                     f"{q['completed']:>9} {e['detail_backlog']:>7}  {last}")
    lines.append("(detail: rows whose whole object is still to be read by the detail backfill)")
    lines.append("")
    if status["breakers"] is None:
        lines.append("circuit breakers: unknown (Redis does not answer)")
    else:
        closed = [b for b in status["breakers"] if b["state"] == "closed"]
        lines.append(f"circuit breakers: {len(closed)} of {len(status['breakers'])} closed")
        for b in status["breakers"]:
            if b["state"] != "closed":
                until = f" until {b['retry_at'][:19].replace('T', ' ')}" if b.get("retry_at") else ""
                lines.append(f"  {b['name']}: {b['state']}{until}" + (f" ({b['reason']})" if b.get("reason") else ""))
    b = status.get("zoho_budget")
    if b is None:
        lines.append("Zoho calls today: unknown (Redis does not answer)")
    else:
        zoho = f"; Zoho says {b['zoho_remaining']} left for the organization" if b["zoho_remaining"] is not None else ""
        spent = ", ".join(f"{p} {n}" for p, n in b["by_purpose"].items())
        lines.append(f"Zoho calls today: {b['used']} of {b['budget']} (zoho.daily_budget), {b['remaining']} left"
                     f"{zoho}; {spent}; resets {b['resets_at'][:16].replace('T', ' ')}")
    d = status.get("detail")
    if d is not None:
        eta = "" if d["waiting"] == 0 else f"; done in {d['eta']} at the current budget" if d.get("eta") else \
            "; no budget left for it (raise zoho.daily_budget, or run tds sync all --details)"
        pictures = f" (and {d['images_waiting']} item images)" if d.get("images_waiting") else ""
        lines.append(f"detail backlog: {d['waiting'] - d.get('images_waiting', 0)} rows await their whole object"
                     f"{pictures}{eta}")
    h, st = status["healer"], status["stats"]
    lines.append("last healer run: " + (f"{h['finished_at'][:19].replace('T', ' ')} (sent again {h['sent_again']}, "
                                        f"dead letters retried {h['dead_letters_retried']}, errors {h['errors']})"
                                        if h else "never"))
    match = "" if not st or st["overall_match"] is None else f" (overall match {st['overall_match']:.2f}%)"
    lines.append("last stats run: " + (f"{st['finished_at'][:19].replace('T', ' ')}{match}" if st else "never"))
    a = status["alerts"]
    lines.append("")
    lines.append(f"open alerts: {a['open']} (critical {a['critical']}, warning {a['warning']}, info {a['info']})"
                 if a["open"] else "open alerts: none")
    for alert in a["items"]:
        entity = f" [{alert['entity']}]" if alert["entity"] else ""
        acked = ", acknowledged" if alert["acknowledged_at"] else ""
        lines.append(f"  {alert['severity']:<8} {alert['type']}{entity}: {alert['message']} "
                     f"(x{alert['count']}, last {alert['last_seen_at'][:19].replace('T', ' ')}{acked})")
    if a["open"] > len(a["items"]):
        lines.append(f"  ... and {a['open'] - len(a['items'])} more: GET /api/tds/alerts")
    return "\n".join(lines)


def to_json(status: dict) -> str:
    return json.dumps(status, indent=2)
