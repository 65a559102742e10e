"""Configuration: TOML + environment, validated as a whole, secrets never shown."""

from __future__ import annotations

import base64
import subprocess
from urllib.parse import quote

import pytest
from support import ROOT, TDS

from tds_daemon import config, settings


def write(tmp_path, body: str):
    path = tmp_path / "tds.toml"
    path.write_text(body)
    return str(path)


def test_defaults_match_the_contract():
    c = config.load(environ={})
    assert c.database.url == "postgresql+psycopg2://localhost/tds"
    assert c.database.entity_schema == "zoho"
    assert c.redis.url == "redis://127.0.0.1:6379/0"
    assert c.api.bind == "127.0.0.1:8080"
    assert c.api.max_body_bytes == 1048576
    assert (c.workers.processes, c.workers.threads) == (2, 8)
    assert c.zoho.region == "com" and c.zoho.requests_per_minute == 100
    assert c.zoho_books_url == "https://www.zohoapis.com/books/v3"
    assert c.zoho_inventory_url == "https://www.zohoapis.com/inventory/v1"
    assert c.zoho_accounts_url == "https://accounts.zoho.com"
    assert c.api.webhook_token == "" and c.api.admin_token == ""


def test_file_then_environment(tmp_path):
    path = write(tmp_path, '[api]\nbind = "0.0.0.0:9000"\nmax_body_bytes = 4096\n[zoho]\nregion = "eu"\n')
    c = config.load(path, environ={"TDS_API_MAX_BODY_BYTES": "8192", "TDS_WORKERS_THREADS": "3"})
    assert c.api.bind == "0.0.0.0:9000"
    assert c.api.max_body_bytes == 8192 and c.workers.threads == 3
    assert c.zoho_books_url == "https://www.zohoapis.eu/books/v3"
    assert c.sources["api.max_body_bytes"] == "TDS_API_MAX_BODY_BYTES"


def test_tds_config_variable_names_the_file(tmp_path):
    path = write(tmp_path, '[log]\nlevel = "DEBUG"\n')
    assert config.load(environ={"TDS_CONFIG": path}).log.level == "DEBUG"


def test_every_bad_key_is_reported_at_once(tmp_path):
    path = write(tmp_path, '[api]\nbind = "nohost"\nmax_body_bytes = "big"\nwebhok_token = "x"\n'
                 '[zoho]\nregion = "mars"\n[nonsense]\na = 1\n')
    with pytest.raises(config.ConfigError) as info:
        config.load(path, environ={"TDS_WORKERS_PROCESSES": "0", "TDS_REDIS_URL": "http://x"})
    keys = {k for k, _ in info.value.problems}
    assert keys == {"api.bind", "api.max_body_bytes", "api.webhok_token", "zoho.region", "nonsense",
                    "workers.processes", "redis.url"}


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[api\n"), environ={})
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(str(tmp_path / "absent.toml"), environ={})


def test_check_config_cli_names_keys_and_never_prints_secrets(tmp_path):
    secret = "super-secret-value-42"
    path = write(tmp_path, f'[api]\nwebhook_token = "{secret}"\nmax_body_bytes = -1\n')
    bad = subprocess.run([*TDS, "check-config", "--config", path], capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin"})
    assert bad.returncode == 1
    assert "api.max_body_bytes" in bad.stderr and "Traceback" not in bad.stderr
    good_path = write(tmp_path, f'[api]\nwebhook_token = "{secret}"\n')
    good = subprocess.run([*TDS, "check-config", "--config", good_path, "-v"], capture_output=True, text=True,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin"})
    assert good.returncode == 0, good.stderr
    assert "api.webhook_token = '(set)'" in good.stdout
    assert secret not in good.stdout + good.stderr + bad.stdout + bad.stderr


@pytest.mark.parametrize("odd", ["/", "#", "?", "@", "["])
def test_check_config_masks_url_passwords_whatever_they_hold(tmp_path, odd):
    """SQLAlchemy takes such a password raw, so a URL's user part runs to its last @: no piece of the password
    is shown, and the host and database still are. A subscriber's URL, which the HTTP client reads by the
    RFC, must have it percent-encoded (but for @); refused otherwise, without echoing it."""
    password = f"Xq{odd}Zk7{odd}Wv9"
    pieces = password.split(odd)
    env = {"PATH": "/usr/bin:/bin",
           "TDS_DATABASE_URL": f"postgresql+psycopg2://tds:{password}@db.example.com:5433/tds_prod",
           "TDS_REDIS_URL": f"redis://:{password}@redis.example.com:6380/2",
           "TDS_ZOHO_BOOKS_URL": f"https://zoho:{password}@books.example.com/books/v3"}
    subscriber = f'[[events.subscribers]]\nurl = "https://erp:{{}}@erp.example.com/hooks"\nsecret = "{SUB_SECRET}"\n'
    good = write(tmp_path, subscriber.format(quote(password, safe="")))
    r = subprocess.run([*TDS, "check-config", "--config", good, "-v"], capture_output=True, text=True, cwd=ROOT,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "database.url = 'postgresql+psycopg2://tds:***@db.example.com:5433/tds_prod'" in r.stdout
    assert "redis.url = 'redis://:***@redis.example.com:6380/2'" in r.stdout
    assert "zoho.books_url = 'https://zoho:***@books.example.com/books/v3'" in r.stdout
    assert "'url': 'https://erp:***@erp.example.com/hooks'" in r.stdout
    raw = write(tmp_path, subscriber.format(password))
    second = subprocess.run([*TDS, "check-config", "--config", raw, "-v"], capture_output=True, text=True,
                            cwd=ROOT, env=env)
    if odd == "@":  # the HTTP client, too, reads the user part up to the host's @
        assert second.returncode == 0 and "'url': 'https://erp:***@erp.example.com/hooks'" in second.stdout
    else:
        assert second.returncode == 1 and "percent-encoded" in second.stderr, second.stderr
    for shown in (r.stdout + r.stderr, second.stdout + second.stderr):
        assert not [p for p in pieces if p in shown], shown


def test_short_secret_is_refused_without_echoing_it(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        config.load(environ={"TDS_API_WEBHOOK_TOKEN": "abc"})
    assert "abc" not in str(info.value)


def test_readme_reference_matches_the_schema():
    readme = (ROOT / "README.md").read_text()
    assert settings.reference_table() in readme, "README's configuration reference is out of date: " \
        "run .venv/bin/python ops/dev/config_reference.py"


def test_example_config_is_valid_and_names_every_key():
    path = ROOT / "ops" / "tds.example.toml"
    assert config.load(str(path), environ={}).values == config.load(environ={}).values
    text = path.read_text()
    for s in settings.SCHEMA:
        assert (f"[[{s.name}]]" if s.kind is list else f"{s.key} =") in text, s.name


SUB_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_event_subscribers_are_tables_in_the_file(tmp_path):
    path = tmp_path / "tds.toml"
    path.write_text(f"""[events]
retain_days = 5
[[events.subscribers]]
url = "https://erp:pw@erp.example.com/hooks"
secret = "{SUB_SECRET}"
types = ["tds.zoho.entity.synced"]
entities = ["invoice", "product_image"]
[[events.subscribers]]
url = "http://127.0.0.1:9000/tds"
secret = "{SUB_SECRET}"
name = "warehouse-app"
""")
    cfg = config.load(str(path), environ={})
    first, second = cfg.subscribers
    assert first.types == ("tds.zoho.entity.synced",) and first.entities == ("invoice", "product_image")
    assert first.label == "https://erp.example.com" and second.label == "warehouse-app"
    shown = repr(cfg.redacted())
    assert SUB_SECRET not in shown and ":pw@" not in shown and "(set)" in shown
    assert config.load(environ={}).subscribers == ()


def test_a_bad_subscriber_is_refused_naming_each_problem(tmp_path):
    path = tmp_path / "tds.toml"
    path.write_text(f"""[[events.subscribers]]
url = "ftp://erp.example.com/hooks"
secret = "not-a-whsec-secret"
types = ["tds.zoho.everything"]
entities = ["invoices"]
colour = "blue"
[[events.subscribers]]
url = "https://erp.example.com/hooks"
secret = "whsec_c2hvcnQ="
[[events.subscribers]]
url = "https://erp.example.com/hooks"
secret = "{SUB_SECRET}"
""")
    with pytest.raises(config.ConfigError) as e:
        config.load(str(path), environ={})
    reasons = [why for key, why in e.value.problems if key == "events.subscribers"]
    text = "\n".join(reasons)
    assert "[0]: url must be an http:// or https:// URL" in text
    assert "[0]: secret must be whsec_" in text and "not-a-whsec-secret" not in text
    assert "[0]: types has 'tds.zoho.everything'" in text and "[0]: entities has 'invoices'" in text
    assert "[0]: unknown key 'colour'" in text
    assert "[1]: secret's key must be 24 to 64 bytes, it is 5" in text
    assert "[2]: url is the same as [1]'s" in text
    with pytest.raises(config.ConfigError) as e:
        config.load(environ={"TDS_EVENTS_SUBSCRIBERS": "https://x"})
    assert "cannot be set by the environment" in str(e.value)
