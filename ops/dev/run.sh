#!/usr/bin/env bash
# `make run`: create the development database if needed, migrate it, start `tds run`, print how to use it.
set -euo pipefail
config=${1:-ops/dev.toml}
here=$(cd "$(dirname "$0")/../.." && pwd)
tds="$here/.venv/bin/tds"
py="$here/.venv/bin/python"

db=$("$py" - "$config" <<'PY'
import sys
from sqlalchemy.engine import make_url
from tds_daemon.config import load
print(make_url(load(sys.argv[1]).database.url).database)
PY
)
"$py" - "$config" <<'PY'
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tds_daemon.config import load
url = make_url(load(sys.argv[1]).database.url)
admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    if not c.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database}).first():
        c.execute(text(f'CREATE DATABASE "{url.database}"'))
        print(f"created database {url.database}")
PY
"$tds" migrate --config "$config"
bind=$("$py" -c "import sys; from tds_daemon.config import load; print(load(sys.argv[1]).api.bind)" "$config")
token=$("$py" -c "import sys; from tds_daemon.config import load; print(load(sys.argv[1]).api.webhook_token)" "$config")
admin=$("$py" -c "import sys; from tds_daemon.config import load; print(load(sys.argv[1]).api.admin_token)" "$config")
sim_port=8090
# Zoho's limits as a Standard plan organization meets them: 5 calls at once, 2,500 calls a day (shared with
# "other integrations": POST /_sim/faults {"daily_used": N} spends some); TDS's own budget is ops/dev.toml's.
"$tds" simulator --port "$sim_port" --max-concurrency 5 --daily-limit 2500 \
  > "${TMPDIR:-/tmp}/tds-dev-simulator.log" 2>&1 &
sim_pid=$!
# || true: after Ctrl-C the simulator is already gone, and set -e would turn that into exit 1
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$sim_port/_sim/info" >/dev/null 2>&1 && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "the Zoho simulator did not start:"; cat "${TMPDIR:-/tmp}/tds-dev-simulator.log"; exit 1; }
  sleep 0.2
done
# An item the simulator already has, for the banner's "change an item" example.
item=$(curl -sf "http://127.0.0.1:$sim_port/_sim/objects/product" \
  | "$py" -c 'import json, sys; print(json.load(sys.stdin)["objects"][0]["id"])')

cat <<MSG

TDS is starting with $config (database $db), against the Zoho simulator on port $sim_port.
Stop both with Ctrl-C.
  dashboard: http://$bind/dashboard   (sign in with the admin token: $admin)
  health:    http://$bind/health/ready
  intake:    http://$bind/api/tds/webhooks/health
  metrics:   http://$bind/metrics
  simulator: http://127.0.0.1:$sim_port/_sim/info   (log: ${TMPDIR:-/tmp}/tds-dev-simulator.log)

Post a sample webhook (Zoho's default payload for an item):
  curl -i -X POST http://$bind/api/tds/webhooks/items \\
    -H 'X-TDS-Webhook-Token: $token' -H 'Content-Type: application/json' \\
    -d '{"item": {"item_id": "4815000000012345678", "name": "Olive oil 1L", "sku": "OIL-1", "rate": 12.5,
         "last_modified_time": "2025-11-13T08:40:00+0300"}}'
and see it applied:
  psql -h 127.0.0.1 $db -c 'SELECT zoho_id, name, sku, rate, zoho_last_modified FROM zoho.products'

Pull everything from the simulator (in another terminal): list pages first, cheap (200 objects a call)
  .venv/bin/tds sync all --full --config $config
The list rows lack line items, addresses, per-warehouse stock ...: the daemon's detail backfill now reads
each whole object (one Zoho call each) from what the day's budget leaves after the scheduled jobs. Watch it:
  .venv/bin/tds status --config $config     # the detail column, the backlog's ETA, Zoho calls today
  curl -s -H 'Authorization: Bearer $admin' http://$bind/api/tds/entities
or read them all now, in the foreground (counted, and allowed past the budget):
  .venv/bin/tds sync all --details --config $config
Have the simulator change an existing item (item $item: its name and rate) and send its webhook to TDS:
  curl -s -X POST http://127.0.0.1:$sim_port/_sim/faults -H 'Content-Type: application/json' \\
    -d '{"fire_webhooks": {"url": "http://$bind", "token": "$token"}}'
  curl -s -X PATCH http://127.0.0.1:$sim_port/_sim/objects/product/$item -H 'Content-Type: application/json' \\
    -d '{"name": "Changed in Zoho", "rate": 13.75}'
its answer's "webhook" is TDS's answer (202); see the row change:
  psql -h 127.0.0.1 $db -c "SELECT zoho_id, name, rate, zoho_last_modified FROM zoho.products WHERE zoho_id = '$item'"

MSG
"$tds" run --config "$config"
