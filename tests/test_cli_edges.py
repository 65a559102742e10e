"""Edges of the command line an operator meets first: secrets in check-config, what a valid file still
leaves refused, where the configuration was looked for when PostgreSQL or Redis does not answer, and the
`make run` banner's example."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from sqlalchemy import text
from support import ADMIN_TOKEN, ROOT, WEBHOOK_TOKEN, free_port, start_daemon, wait_until
from support.pull import cli

from tds_daemon.config import DEFAULT_PATH

# No TDS_* variable of the test session: each test says which configuration it gives.
BARE = {k: v for k, v in os.environ.items() if not k.startswith("TDS_")}


def write(tmp_path, body: str) -> str:
    path = tmp_path / "tds.toml"
    path.write_text(body)
    return str(path)


def one_line(r) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("tds: "), r.stderr
    return r.stderr.strip()


def test_check_config_masks_passwords_inside_urls(tmp_path):
    path = write(tmp_path, '[database]\nurl = "postgresql://tds:pg-pass-123@db.example/tds?password=qs-pass-456"\n'
                 '[redis]\nurl = "redis://:redis-pass-789@127.0.0.1:6379/0"\n'
                 '[api]\nwebhook_token = "hook-token-1"\nadmin_token = "admin-token-1"\n'
                 '[zoho]\nclient_secret = "zoho-secret-1"\nrefresh_token = "zoho-refresh-1"\n')
    r = cli(BARE, "check-config", "--config", path, "-v")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for secret in ("pg-pass-123", "qs-pass-456", "redis-pass-789", "hook-token-1", "admin-token-1",
                   "zoho-secret-1", "zoho-refresh-1"):
        assert secret not in out, secret
    assert "database.url = 'postgresql://tds:***@db.example/tds?password=***'" in out
    assert "redis.url = 'redis://:***@127.0.0.1:6379/0'" in out
    assert "zoho.client_secret = '(set)'" in out and "zoho.client_id = '(not set)'" in out

    bad = write(tmp_path, '[database]\nurl = "mysql://tds:pg-pass-123@db.example/tds"\n')
    r = cli(BARE, "check-config", "--config", bad)
    assert r.returncode == 1 and "database.url" in r.stderr
    assert "pg-pass-123" not in r.stderr and "mysql://tds:***@db.example/tds" in r.stderr


def test_a_valid_file_says_what_it_leaves_refused(tmp_path):
    r = cli(BARE, "check-config", "--config", write(tmp_path, '[log]\nlevel = "INFO"\n'))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("is valid, but:")
    assert "  - webhooks are refused until api.webhook_token is set" in lines
    assert "  - the admin API and /dashboard are refused until api.admin_token is set" in lines
    assert any("pulls from Zoho" in line and "zoho.client_id, zoho.client_secret, zoho.refresh_token, "
               "zoho.organization_id are set" in line for line in lines), lines

    r = cli(BARE, "check-config", "--config", write(tmp_path, '[api]\nadmin_token = "admin-token-1"\n'
                                                    '[zoho]\nclient_id = "a"\nclient_secret = "b"\n'
                                                    'refresh_token = "c"\norganization_id = "1"\n'))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith("is valid, but webhooks are refused until api.webhook_token is set")

    env = {**BARE, "TDS_API_WEBHOOK_TOKEN": "hook-token-1", "TDS_API_ADMIN_TOKEN": "admin-token-1",
           "TDS_ZOHO_CLIENT_ID": "a", "TDS_ZOHO_CLIENT_SECRET": "b", "TDS_ZOHO_REFRESH_TOKEN": "c",
           "TDS_ZOHO_ORGANIZATION_ID": "1"}
    r = cli(env, "check-config", "--config", write(tmp_path, ""))
    assert r.returncode == 0 and r.stdout.splitlines() == [f"configuration {tmp_path / 'tds.toml'} is valid"]


def test_status_without_a_configuration_says_where_it_looked(tmp_path):
    assert not os.path.exists(DEFAULT_PATH)  # what "without --config" means on this machine
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    line = one_line(cli({**BARE, "TDS_DATABASE_URL": f"postgresql://tds:pg-pass-123@{dead}/tds",
                         "TDS_DATABASE_CONNECT_TIMEOUT_S": "2"}, "status"))
    assert "cannot connect to PostgreSQL" in line and "pg-pass-123" not in line
    assert "database.url is from TDS_DATABASE_URL" in line
    assert f"--config or $TDS_CONFIG, and {DEFAULT_PATH} does not exist" in line
    assert "point at one with --config PATH or TDS_CONFIG=PATH" in line

    path = write(tmp_path, f'[database]\nurl = "postgresql+psycopg2://{dead}/tds"\nconnect_timeout_s = 2\n')
    for args, env in ((["--config", path], BARE), ([], {**BARE, "TDS_CONFIG": path})):
        line = one_line(cli(env, "status", *args))
        assert f"database.url from {path}" in line and "--config PATH or TDS_CONFIG=PATH" in line, line


def test_status_and_sync_name_where_an_unreachable_redis_came_from(migrated, clean_db):
    env = {**migrated, "TDS_REDIS_URL": f"redis://:redis-pass-789@127.0.0.1:{free_port()}/0"}
    r = cli(env, "status")
    assert r.returncode == 0 and "circuit breakers: unknown" in r.stdout, r.stderr
    assert r.stderr.count("\n") == 1 and "cannot reach Redis at redis://:***@127.0.0.1" in r.stderr, r.stderr
    assert "redis.url is from TDS_REDIS_URL" in r.stderr and "redis-pass-789" not in r.stderr

    line = one_line(cli(env, "sync", "user"))
    assert "user: ConnectionError" in line and "redis.url is from TDS_REDIS_URL" in line
    assert "redis-pass-789" not in line


def banner(run_sh: str, **values: str) -> str:
    """The text `make run` prints, rendered by bash from ops/dev/run.sh itself (its item lookup included)."""
    lines = run_sh.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("item=$("))
    lookup = "\n".join(lines[at:at + 2])
    body = run_sh[run_sh.index("cat <<MSG\n"):run_sh.index("\nMSG\n") + 5]
    assigned = "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
    script = f"set -euo pipefail\n{assigned}{lookup}\n{body}"
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_run_banner_changes_an_existing_item(sim, processes, migrated, clean_db):
    d = start_daemon(processes, migrated)
    port = sim.base.rsplit(":", 1)[1]
    shown = banner((ROOT / "ops" / "dev" / "run.sh").read_text(), py=sys.executable, sim_port=port,
                  bind=d.base_url.removeprefix("http://"), token=WEBHOOK_TOKEN, admin=ADMIN_TOKEN,
                  config="ops/dev.toml", db="tds_dev")
    section = shown[shown.index("Have the simulator change"):]
    commands = [c.strip() for c in section.split("\n\n")[0].replace("\\\n", " ").splitlines()
                if c.strip().startswith("curl ")]
    assert len(commands) == 2 and "PATCH" in commands[1], commands
    item_id = commands[1].split("/_sim/objects/product/")[1].split()[0]
    before = sim.object("product", item_id)  # an item the simulator already had
    count = sim.truth("product")["count"]

    answers = [subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=30) for c in commands]
    assert all(a.returncode == 0 for a in answers), answers
    changed = json.loads(answers[1].stdout)
    assert changed["webhook"]["status"] == 202, changed
    assert sim.truth("product")["count"] == count  # changed, not created
    after = sim.object("product", item_id)
    assert after["name"] != before["name"] and after["last_modified_time"] != before["last_modified_time"]

    def row():
        with clean_db.connect() as c:
            return c.execute(text("SELECT name, rate FROM zoho.products WHERE zoho_id = :z"), {"z": item_id}).first()

    assert wait_until(lambda: row() and row().name == after["name"], 15, message="the change applied")
    assert float(row().rate) == after["rate"]


def test_the_command_loads_no_metrics_before_it_prepares_their_directory():
    """prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when first imported: composing the parser must
    not import it (the supervisor's and workers' counters would stay in their own memory)."""
    probe = "import sys, tds.main; print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)
