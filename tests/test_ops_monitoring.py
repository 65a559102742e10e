"""What ops/ ships for Prometheus and Grafana: the alert rules pass `promtool check rules` and their unit
tests, the dashboard is importable and every query parses, and every metric either of them names is one
TDS exports (a live scrape after some activity, plus the names the code declares). Also
``tds_scheduler_leader``, the scrape-time gauge the no-leader alert reads."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import falcon.testing
import pytest
import redis as redis_lib
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT, free_port, start_daemon, wait_until
from support.sim import ADMIN
from support.subscriber import Subscriber as Consumer
from support.zoho_objects import make_object

from tds_daemon import metrics
from tds_daemon.api.app import create_app
from tds_daemon.care.jobs import JOBS, leader_key
from tds_daemon.config import load

RULES = ROOT / "ops" / "prometheus" / "tds-alerts.yml"
RULES_TEST = ROOT / "ops" / "prometheus" / "tds-alerts.test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "tds.json"
EXPOSITION = ROOT / "tds_daemon" / "api" / "exposition.py"
# Grafana's interval variables, replaced by a duration so that promtool can parse the query.
GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
NOT_TDS = {"up"}  # made by Prometheus for each scrape target


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make test` installs it (ops/dev/test-deps.sh, Debian's prometheus)"
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(f"panel {p['id']} ({p['title']}) {t['refId']}", t["expr"])
            for p in dashboard_panels(dashboard) for t in p.get("targets", [])]


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
             "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (what remains once strings, label matchers, label lists,
    ranges, function calls and keywords are taken out)."""
    e = _STRINGS.sub('""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = _LABEL_LISTS.sub(" ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    return {m for m in _NAME.findall(e) if m not in _KEYWORDS}


def declared_names() -> set[str]:
    """Sample names of the metrics the code declares: every process's counters and histograms
    (tds_daemon.metrics) and the gauges /metrics computes at scrape time (exposition.py)."""
    names = set()
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        for family in metric.describe():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                        "summary": ["_sum", "_count"]}.get(family.type, [""])
            names.update(family.name + s for s in suffixes)
    names.update(scrape_time_gauges())
    return names


def scrape_time_gauges() -> set[str]:
    return set(re.findall(r'GaugeMetricFamily\(\s*"(tds_\w+)"', EXPOSITION.read_text()))


def sample_names(exposition: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(exposition) for s in family.samples}


# --- the alert rules ---

def test_alert_rules_pass_promtool_check_and_their_unit_tests():
    check = run_promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    unit = run_promtool("test", "rules", RULES_TEST.name, cwd=RULES.parent)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def test_every_alert_is_unit_tested_firing_and_tells_what_to_do():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)) and len(names) >= 10, names
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]
    checks = [c for t in yaml.safe_load(RULES_TEST.read_text())["tests"] for c in t["alert_rule_test"]]
    fired = {c["alertname"] for c in checks if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in checks if not c.get("exp_alerts")}
    assert fired == set(names), f"never shown firing: {set(names) - fired}"
    assert len(quiet) >= 5, quiet


# --- the dashboard ---

def test_dashboard_is_importable_with_a_datasource_variable_every_panel_uses():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    [ds_input] = [i for i in dashboard["__inputs"] if i["type"] == "datasource"]
    assert ds_input["pluginId"] == "prometheus"
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    assert variable["current"]["value"] == "${" + ds_input["name"] + "}"
    panels = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip(), p["title"]


def test_every_dashboard_query_parses_as_promql(tmp_path):
    exprs = dashboard_exprs()
    rules = [{"record": f"tds_dashboard:query_{i}", "expr": GRAFANA_VARS.sub("5m", expr)}
             for i, (_, expr) in enumerate(exprs)]
    assert all("$" not in r["expr"] for r in rules), [r["expr"] for r in rules if "$" in r["expr"]]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert check.returncode == 0 and f"SUCCESS: {len(rules)} rules found" in check.stdout, \
        check.stdout + check.stderr


def test_metric_names_are_read_from_promql():
    assert metric_names('sum by (entity, outcome) (rate(tds_a_total{outcome!~"accepted|x"}[$__rate_interval]))') \
        == {"tds_a_total"}
    assert metric_names("time() - max by (entity) (tds_b) > 26 * 3600 and on (job) (up offset 15m == 1)") \
        == {"tds_b", "up"}
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(tds_c_bucket[5m]))) or vector(0)') \
        == {"tds_c_bucket"}
    assert metric_names('label_replace(tds_d, "x", "$1", "y", "(.*)") / ignoring (x) group_left tds_e') \
        == {"tds_d", "tds_e"}


# --- the metrics they name ---

def test_dashboard_and_alerts_name_only_metrics_tds_exports(sim, pull_env, processes, tmp_path):
    sim.reset(counts={"product": 20})
    jobs_off = {"TDS_" + job.config_key.upper().replace(".", "_"): "off" for job in JOBS}
    # An event subscriber, so that its gauges and counters have samples.
    consumer = Consumer()
    config = tmp_path / "tds.toml"
    config.write_text(f'[[events.subscribers]]\nurl = "{consumer.url}"\nname = "consumer"\n'
                      f'secret = "whsec_{base64.b64encode(bytes(32)).decode()}"\n')
    daemon = start_daemon(processes, pull_env, TDS_SCHEDULER_ENABLED="true", TDS_CONFIG=str(config), **jobs_off)
    # Activity, so that the labelled metrics have samples: webhooks taken and refused, a pull, a job run now.
    assert daemon.post("products", {"item": make_object("product")}).status_code == 202
    assert daemon.post("products", {"item": make_object("product")}, token="wrong").status_code == 401
    run_id = daemon.http.post("/api/tds/sync/product", params={"full": 1}, headers=ADMIN).json()["runs"][0]["id"]
    assert daemon.http.post("/api/tds/monitoring/scheduler/jobs/healing/run", headers=ADMIN).status_code == 202
    assert daemon.http.post("/api/tds/stats/run", params={"entity": "product"}, headers=ADMIN).status_code == 202

    def scraped() -> str | None:
        run = daemon.http.get(f"/api/tds/runs/{run_id}", headers=ADMIN).json()
        assert run["status"] in {"queued", "running", "succeeded"}, run
        body = daemon.http.get("/metrics").text
        wanted = ("tds_webhook_apply_seconds_bucket", "tds_sync_last_success_timestamp_seconds{",
                  "tds_scheduler_leader 1.0", "tds_scheduler_job_runs_total{", "tds_data_check_findings{",
                  'tds_events_lag_seconds{subscriber="consumer"}', "tds_events_delivered_total{")
        return body if run["status"] == "succeeded" and all(w in body for w in wanted) else None

    try:
        live = sample_names(wait_until(scraped, 30, interval=0.2, message="a scrape showing the activity"))
    finally:
        consumer.close()
    assert scrape_time_gauges() <= live, f"scrape-time gauges missing from /metrics: {scrape_time_gauges() - live}"
    exported = live | declared_names()

    named = [(where, metric_names(expr)) for where, expr in dashboard_exprs()]
    named += [(f"alert {r['alert']}", metric_names(r["expr"])) for r in alert_rules()]
    for where, names in named:
        assert names, f"{where}: no metric found in its query"
        unknown = names - exported - NOT_TDS
        assert not unknown, f"{where} names metrics TDS does not export: {sorted(unknown)}"
    used = set().union(*(names for _, names in named))
    for required in ("tds_webhooks_received_total", "tds_webhook_apply_seconds_bucket", "tds_queue_items",
                     "tds_dead_letter_items", "tds_breaker_state", "tds_sync_runs_total",
                     "tds_sync_last_success_timestamp_seconds", "tds_detail_backlog", "tds_image_backlog",
                     "tds_zoho_calls_today", "tds_zoho_daily_budget", "tds_zoho_budget_remaining",
                     "tds_child_restarts_total", "tds_config_reloads_total", "tds_scheduler_job_runs_total",
                     "tds_scheduler_leader", "tds_data_check_findings", "tds_events_lag_seconds",
                     "tds_events_dead_letters", "tds_events_delivered_total", "tds_events_failed_total", "up"):
        assert required in used, f"neither the dashboard nor the alerts use {required}"


# --- tds_scheduler_leader ---

@pytest.fixture
def leader_scrape(engine, pg_url, redis_url, redis_namespace, tmp_path, monkeypatch):
    """Scrapes /metrics of an API app in this process, with its own Redis namespace; yields (scrape, set_leader)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    namespace = f"{redis_namespace}_{uuid.uuid4().hex[:8]}"
    client = redis_lib.Redis.from_url(redis_url, socket_timeout=5)

    def scrape(scheduler_enabled: bool = True, redis_url_: str = redis_url) -> str:
        config = load(environ={"TDS_DATABASE_URL": pg_url,
                               "TDS_REDIS_URL": redis_url_, "TDS_REDIS_NAMESPACE": namespace,
                               "TDS_REDIS_SOCKET_TIMEOUT_S": "1",
                               "TDS_SCHEDULER_ENABLED": str(scheduler_enabled).lower()})
        r = falcon.testing.TestClient(create_app(config, engine=engine)).simulate_get("/metrics")
        assert r.status_code == 200
        return r.text

    def set_leader(holder: str | None) -> None:
        if holder is None:
            client.delete(leader_key(namespace))
        else:
            client.set(leader_key(namespace), holder, px=30_000)

    yield scrape, set_leader
    client.delete(leader_key(namespace))
    client.close()


def leader_lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("tds_scheduler_leader")]


def test_scheduler_leader_gauge_says_whether_the_lease_is_held(leader_scrape):
    scrape, set_leader = leader_scrape
    assert leader_lines(scrape()) == ["tds_scheduler_leader 0.0"]
    set_leader("host:1234:abcd")
    assert leader_lines(scrape()) == ["tds_scheduler_leader 1.0"]
    assert leader_lines(scrape(scheduler_enabled=False)) == [], "no leader is expected where the scheduler is off"
    set_leader(None)
    assert leader_lines(scrape()) == ["tds_scheduler_leader 0.0"]
    # Redis unreachable: the gauge is left out (as the breakers and the budget are), not reported as 0.
    assert leader_lines(scrape(redis_url_=f"redis://127.0.0.1:{free_port()}/0")) == []
