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
cat <<MSG

TDS is starting with $config (database $db). Stop it with Ctrl-C.
  health:   http://$bind/health/ready
  intake:   http://$bind/api/tds/webhooks/health
  metrics:  http://$bind/metrics

Post a sample webhook (Zoho's default payload for an item):
  curl -i -X POST http://$bind/api/tds/webhooks/items \\
    -H 'X-TDS-Webhook-Token: $token' -H 'Content-Type: application/json' \\
    -d '{"item": {"item_id": "4815000000012345678", "name": "Olive oil 1L", "sku": "OIL-1", "rate": 12.5,
         "last_modified_time": "2025-11-13T08:40:00+0300"}}'
and see it applied:
  psql -h 127.0.0.1 $db -c 'SELECT zoho_id, name, sku, rate, zoho_last_modified FROM zoho.products'

MSG
exec "$tds" run --config "$config"
