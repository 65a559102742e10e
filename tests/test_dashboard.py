"""``/dashboard`` in a real browser: Debian's headless Chromium driven by selenium against a running
``tds run`` (API and workers) pulling from the simulator.

Login (a wrong token refused, the right one opening an HttpOnly SameSite=Strict session), the figures
equal to what the JSON API answers, and the page's buttons: acknowledge an alert, replay a dead letter
until it is applied, run a scheduled job now. One daemon and one browser serve the module.
"""

from __future__ import annotations

import shutil
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from sqlalchemy import text
from support import ADMIN_TOKEN, WEBHOOK_TOKEN, start_daemon, wait_until, web
from support.pull import cli
from support.zoho_objects import default_payload, make_object, new_id

from tds_daemon.api.session import Sessions
from tds_daemon.guard import alerts

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1800", "--disable-extensions"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(module_processes, migrated, engine, sim_base, redis_namespace, tmp_path_factory):
    """A running TDS with its own Redis namespace and metrics, one product pulled from the simulator."""
    import uuid

    from support import truncate
    from support.sim import zoho_env

    truncate(engine)
    metrics = tmp_path_factory.mktemp("metrics")
    env = {**migrated, **zoho_env(sim_base), "TDS_REDIS_NAMESPACE": f"{redis_namespace}_{uuid.uuid4().hex[:8]}",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics), "TDS_ZOHO_REQUESTS_PER_MINUTE": "2000"}
    daemon = start_daemon(module_processes, env)
    yield daemon
    daemon.http.close()


def api(site, path: str) -> dict:
    r = site.http.get(path, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


def shown(driver, name: str) -> str:
    try:
        return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]').text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def login(driver, site, token: str) -> None:
    driver.get(f"{site.base_url}/dashboard")
    field = driver.find_element(By.NAME, "token")
    assert field.get_attribute("type") == "password"
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, '[data-testid="login-submit"]').click()


def loaded(driver) -> bool:
    return driver.execute_script("return document.body.dataset.loaded === 'true'")


def click(driver, row_testid: str, button_testid: str) -> None:
    row = driver.find_element(By.CSS_SELECTOR, f'[data-testid="{row_testid}"]')
    row.find_element(By.CSS_SELECTOR, f'[data-testid="{button_testid}"]').click()


def test_a_wrong_token_is_refused_and_the_right_one_opens_a_session(browser, site):
    browser.delete_all_cookies()
    login(browser, site, "not-the-admin-token")
    wait_until(lambda: "not the admin token" in shown(browser, "login-error"), 20, message="refused")
    assert browser.find_elements(By.NAME, "token") and browser.get_cookie("tds_session") is None
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="overall-status"]')

    login(browser, site, ADMIN_TOKEN)
    wait_until(lambda: loaded(browser), 20, message="the page loaded its figures")
    cookie = browser.get_cookie("tds_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie.get("expiry"), cookie
    assert browser.execute_script("return document.cookie") == ""  # out of a script's reach
    assert shown(browser, "overall-status") == api(site, "/api/tds/monitoring/health")["status"]

    # The session opens the JSON API too, but a POST needs the page's CSRF token; Bearer still works.
    jar = {"tds_session": cookie["value"]}
    assert web.get(f"{site.base_url}/api/tds/alerts", cookies=jar).status_code == 200
    refused = web.post(f"{site.base_url}/api/tds/stats/run", cookies=jar)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_token_invalid"
    assert web.post(f"{site.base_url}/api/tds/stats/run", headers=ADMIN).status_code == 202
    forged = web.get(f"{site.base_url}/api/tds/alerts", cookies={"tds_session": cookie["value"][:-2] + "00"})
    assert forged.status_code == 401


def test_the_figures_are_the_json_apis(browser, site, engine):
    assert cli(site.env, "sync", "product").returncode == 0
    bad = new_id()
    r = site.post("product", default_payload("product", make_object("product", bad, rate="abc")),
                  token=WEBHOOK_TOKEN)
    assert r.status_code == 202, r.text
    assert site.post("product", {"item": {}}, token="wrong-token").status_code == 401
    wait_until(lambda: api(site, "/api/tds/dead-letter")["total"] == 1, 30, message="a dead letter")

    browser.get(f"{site.base_url}/dashboard")
    wait_until(lambda: loaded(browser), 20, message="the page loaded its figures")
    browser.execute_script("window.__same_page = true")

    def same() -> bool:
        ents = api(site, "/api/tds/entities")
        stats = api(site, "/api/tds/webhooks/stats")
        product = next(e for e in ents["entities"] if e["name"] == "product")
        row = shown(browser, "entity-product")
        return (shown(browser, "dead-letters") == str(api(site, "/api/tds/dead-letter")["total"])
                and shown(browser, "zoho-calls-today") == f"{ents['zoho_budget']['used']:,}"
                and shown(browser, "overall-status") == api(site, "/api/tds/monitoring/health")["status"]
                and f"{product['live_rows']:,}" in row.split()
                and f"{stats['entities']['product']['received_1h']} / {stats['entities']['product']['received_24h']}"
                in row
                and "succeeded" in row)

    wait_until(same, 30, interval=0.5, message="the page's figures equal the API's")
    assert shown(browser, "dead-letters") == "1" and int(shown(browser, "zoho-calls-today").replace(",", "")) > 0
    for spec_name in [e["name"] for e in api(site, "/api/tds/entities")["entities"]]:
        assert shown(browser, f"entity-{spec_name}"), spec_name
    assert "token_invalid 1" in shown(browser, "refusals")
    assert browser.execute_script("return window.__same_page === true")  # refreshed without reloading


def test_the_data_check_counts_are_the_latest_stats_runs(browser, site):
    twins = [make_object("product", new_id(), sku="TWIN-1") for _ in range(2)]
    for twin in twins:
        assert site.post("product", default_payload("product", twin), token=WEBHOOK_TOKEN).status_code == 202
    for twin in twins:
        wait_until(lambda twin=twin: site.http.get(f"/api/tds/objects/product/{twin['item_id']}", headers=ADMIN)
                   .json().get("row"), 30, message="the product applied")
    before = (api(site, "/api/tds/stats?limit=1")["latest"] or {}).get("id", 0)
    assert site.http.post("/api/tds/stats/run", params={"entity": "product"}, headers=ADMIN).status_code == 202

    def newer() -> dict | None:
        latest = api(site, "/api/tds/stats?limit=1")["latest"]
        return latest if latest and latest["id"] > before else None

    latest = wait_until(newer, 60, interval=0.2, message="a new stats run")
    assert latest["data_checks"]["products"]["counts"] == {"product": 2}

    browser.get(f"{site.base_url}/dashboard")
    wait_until(lambda: loaded(browser), 20, message="the page loaded its figures")
    checks = latest["data_checks"]
    wait_until(lambda: all(shown(browser, f"data-check-{name}") == f"{name}\n{checks[name]['total']:,}"
                           for name in ("orphans", "products", "integrity")), 20, message="the counts shown")
    assert "products" in shown(browser, "data-checks") and "stats run" in shown(browser, "data-checks")


def test_acknowledge_replay_and_run_now_from_the_page(browser, site, engine):
    alert_id = alerts.raise_alert(engine, "sync_failed", "warning", "3 pulls of product failed in a row",
                                  entity="product")
    browser.get(f"{site.base_url}/dashboard")
    wait_until(lambda: shown(browser, f"alert-{alert_id}"), 20, message="the alert on the page")
    click(browser, f"alert-{alert_id}", "acknowledge")
    wait_until(lambda: next(a for a in api(site, "/api/tds/alerts")["alerts"] if a["id"] == alert_id)
               ["acknowledged_at"], 20, message="the alert acknowledged")
    wait_until(lambda: "acknowledged" in shown(browser, f"alert-{alert_id}"), 20, message="shown acknowledged")

    dead = api(site, "/api/tds/dead-letter")["items"][0]
    with engine.begin() as c:  # the operator fixes the cause, then replays from the page
        c.execute(text("UPDATE tds_inbox_events SET payload = jsonb_set(payload, '{item,rate}', '\"12.50\"') "
                       "WHERE id = :id"), {"id": dead["event_id"]})
    wait_until(lambda: shown(browser, f"dead-letter-{dead['id']}"), 20, message="the dead letter listed")
    click(browser, f"dead-letter-{dead['id']}", "replay")
    wait_until(lambda: api(site, "/api/tds/dead-letter")["total"] == 0, 30, message="replayed")
    with engine.connect() as c:
        wait_until(lambda: c.execute(text("SELECT rate FROM zoho.products WHERE zoho_id = :z"),
                                     {"z": dead["zoho_id"]}).scalar_one_or_none() is not None, 30,
                   message="the replayed product applied")
    wait_until(lambda: shown(browser, "dead-letters") == "0", 20, message="the page shows no dead letter")

    click(browser, "job-statistics", "run-now")
    wait_until(lambda: next(j for j in api(site, "/api/tds/monitoring/scheduler/jobs")["jobs"]
                            if j["id"] == "statistics")["last_outcome"] == "ok", 20, message="statistics run")
    wait_until(lambda: "statistics sent" in shown(browser, "toast"), 10, message="the page says so")


def test_sign_out_ends_the_session(browser, site):
    browser.get(f"{site.base_url}/dashboard")
    wait_until(lambda: loaded(browser), 20, message="the page")
    browser.find_element(By.CSS_SELECTOR, '[data-testid="logout"]').click()
    wait_until(lambda: browser.find_elements(By.NAME, "token"), 20, message="the login form again")
    assert browser.get_cookie("tds_session") is None


def test_a_session_expires_and_dies_with_the_token_or_its_end(engine):
    sessions = Sessions("admin-token-1", 3600, engine)
    now = time.time()
    cookie = sessions.issue("192.0.2.1", now)
    assert sessions.nonce(cookie, now + 3599) and sessions.nonce(cookie, now + 3601) is None
    assert Sessions("admin-token-2", 3600, engine).nonce(cookie, now) is None
    assert Sessions("", 3600, engine).nonce(cookie, now) is None
    nonce = sessions.nonce(cookie, now)
    assert sessions.csrf_ok(nonce, sessions.csrf(nonce)) and not sessions.csrf_ok(nonce, "0" * 64)
    sessions.end(nonce)
    assert sessions.nonce(cookie, now) is None
