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
sim_port=8090
"$tds" simulator --port "$sim_port" > "${TMPDIR:-/tmp}/tds-dev-simulator.log" 2>&1 &
sim_pid=$!
# || true: after Ctrl-C the simulator is already gone, and set -e would turn that into exit 1
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$sim_port/_sim/info" >/dev/null 2>&1 && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "the Zoho simulator did not start:"; cat "${TMPDIR:-/tmp}/tds-dev-simulator.log"; exit 1; }
  sleep 0.2
done

cat <<MSG

TDS is starting with $config (database $db), against the Zoho simulator on port $sim_port.
Stop both with Ctrl-C.
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

Pull everything from the simulator (in another terminal):
  .venv/bin/tds sync all --full --config $config
Have the simulator change an item and send its webhook to TDS:
  curl -s -X POST http://127.0.0.1:$sim_port/_sim/faults -H 'Content-Type: application/json' \\
    -d '{"fire_webhooks": {"url": "http://$bind", "token": "$token"}}'
  curl -s -X POST http://127.0.0.1:$sim_port/_sim/objects/product -H 'Content-Type: application/json' -d '{}'

MSG
"$tds" run --config "$config"
