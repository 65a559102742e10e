"""Sales returns, the thirteenth entity: by webhook and by pull, whole, with their line items."""

from __future__ import annotations

from sqlalchemy import text
from support import WEBHOOK_TOKEN, start_daemon, wait_until
from support.pull import cli

from tds_daemon import zohovalues


def returns(engine) -> dict[str, dict]:
    with engine.connect() as c:
        return {r["zoho_id"]: dict(r) for r in c.execute(text("SELECT * FROM zoho.sales_returns")).mappings()}


def test_a_sales_return_by_webhook_and_by_pull_with_its_line_items(sim, pull_env, engine, processes):
    sim.reset(counts={"sales_order": 40, "sales_return": 25})
    truth = sim.truth("sales_return")
    assert truth["count"] == 25
    daemon = start_daemon(processes, {**pull_env, "TDS_SCHEDULER_DETAIL_BACKFILL": "off"})
    oid = truth["objects"][0]["id"]
    whole = sim.object("sales_return", oid)
    for alias in ("salesreturns", "returns", "sales-returns", "sales_returns"):
        fired = sim.control("POST", "webhooks/fire", {"url": daemon.base_url, "token": WEBHOOK_TOKEN,
                                                      "entity": "sales_return", "id": oid})
        assert fired["status"] in (200, 202), fired
        r = daemon.post(alias, {"salesreturn": whole})
        assert r.status_code in (200, 202), (alias, r.text)
    wait_until(lambda: oid in returns(engine), 15, message="the webhook applied")
    row = returns(engine)[oid]
    assert row["raw"] == whole and row["detail_state"] == "current" and row["raw"]["line_items"]
    assert (row["salesreturn_number"], row["salesorder_id"], row["salesorder_number"], row["customer_id"]) == (
        whole["salesreturn_number"], whole["salesorder_id"], whole["salesorder_number"], whole["customer_id"])
    assert (row["status"], row["receive_status"], row["refund_status"], row["currency_code"]) == (
        whole["salesreturn_status"], whole["receive_status"] or None, whole["refund_status"] or None,
        whole["currency_code"])  # an empty string is NULL in a typed column
    assert row["total"] == zohovalues.convert("numeric", whole["total"])
    assert row["date"].isoformat() == whole["date"]
    processes.stop(daemon.proc)

    r = cli(pull_env, "sync", "returns", "--full")
    assert r.returncode == 0, r.stderr
    assert "sales_return: full sync 25 objects" in r.stdout + r.stderr
    r = cli(pull_env, "sync", "sales_return", "--details")
    assert r.returncode == 0, r.stderr
    assert "details: read 24 whole objects (sales_return 24)" in r.stdout + r.stderr, r.stdout + r.stderr
    rows = returns(engine)
    assert set(rows) == {o["id"] for o in truth["objects"]}
    for zid, row in rows.items():
        assert row["raw"] == sim.object("sales_return", zid) and row["detail_state"] == "current", zid
    status = cli(pull_env, "status")
    assert any(line.startswith("sales_return ") for line in status.stdout.splitlines()), status.stdout
