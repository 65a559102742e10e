"""Hostile and broken webhook bodies against a live ``tds api`` (each a 4xx with its reason, nothing stored, no
ERROR line), ids that are not Zoho ids kept out of every Zoho URL, objects a pull brings with text PostgreSQL
cannot store, and random JSON thrown at every webhook alias."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from support import WEBHOOK_TOKEN, start_api
from support.zoho_objects import make_object

from tds_daemon import entities
from tds_daemon.apply import upsert
from tds_daemon.care import datachecks
from tds_daemon.pull import detail, stockitems
from tds_daemon.pull.zoho.errors import ZohoInvalidId
from tds_daemon.refusal import Refusal

HOOK = {"X-TDS-Webhook-Token": WEBHOOK_TOKEN, "Content-Type": "application/json"}
ALIASES = [alias for spec in entities.ENTITIES for alias in spec.route_names]


@pytest.fixture(scope="module")
def live_api(module_processes, migrated):
    a = start_api(module_processes, migrated)
    yield a
    a.http.close()


def stored(engine) -> tuple[int, int]:
    """(inbox events, sync items): what an accepted webhook writes."""
    with engine.connect() as c:
        return (c.execute(text("SELECT count(*) FROM tds_inbox_events")).scalar_one(),
                c.execute(text("SELECT count(*) FROM tds_sync_queue")).scalar_one())


def errors_logged(api, since: int = 0) -> list[str]:
    """ERROR lines and tracebacks in the API's output (from character ``since`` on)."""
    return [line for line in api.output()[since:].splitlines() if re.search(r"\bERROR\b|Traceback", line)]


def item(**fields) -> bytes:
    """A product webhook body as JSON text, ``fields`` over a valid item (values are JSON text, as sent)."""
    members = {"item_id": '"4815000000000000123"', "name": '"Oil"',
               "last_modified_time": json.dumps(make_object("product")["last_modified_time"]), **fields}
    return ('{"item": {' + ", ".join(f"{k}: {v}" if k.startswith('"') else f'"{k}": {v}'
                                     for k, v in members.items()) + "}}").encode()


REFUSED = [
    # (case, alias, body, status, error code)
    ("NUL in a value", "items", item(name=r'"Oil\u00001L"'), 400, "unstorable_text"),
    ("NUL deep inside", "items", item(custom_fields=r'[{"label": "x", "value": {"v": ["ok", "a\u0000"]}}]'), 400,
     "unstorable_text"),
    ("NUL in a key", "items", item(**{'"cf\\u0000x"': '"1"'}), 400, "unstorable_text"),
    ("lone high surrogate", "items", item(name=r'"half \ud83d of an emoji"'), 400, "unstorable_text"),
    ("lone low surrogate in a key", "items", item(**{'"\\udc00"': "1"}), 400, "unstorable_text"),
    # Without a last-modified time the content is hashed: a surrogate reached that hash as a 500 before.
    ("surrogate, no last-modified", "users", rb'{"user": {"user_id": "77", "name": "\udfff"}}', 400,
     "unstorable_text"),
    ("number beyond a double", "items", item(rate="1e400"), 400, "number_out_of_range"),
    ("NaN", "items", item(rate="NaN"), 400, "number_out_of_range"),
    ("id with letters", "items", item(item_id='"48150000abc"'), 422, "invalid_id"),
    ("id climbing a path", "items", item(item_id='"../contacts"'), 422, "invalid_id"),
    ("id with an encoded slash", "items", item(item_id='"1%2Fimage"'), 422, "invalid_id"),
    ("id with a slash", "items", item(item_id='"1/image"'), 422, "invalid_id"),
    ("id with spaces", "items", item(item_id='" 4815 "'), 422, "invalid_id"),
    ("id in Arabic digits", "items", item(item_id='"١٢٣"'), 422, "invalid_id"),
    ("negative id", "items", item(item_id="-4815"), 422, "invalid_id"),
    ("float id", "items", item(item_id="4815.5"), 422, "invalid_id"),
    ("boolean id", "items", item(item_id="true"), 422, "invalid_id"),
    ("object id", "items", item(item_id='{"id": 1}'), 422, "invalid_id"),
    ("huge id", "items", item(item_id="1" * 40), 422, "invalid_id"),
    ("id of 33 digits", "items", item(item_id='"' + "4" * 33 + '"'), 422, "invalid_id"),
    ("NUL in the id", "items", item(item_id=r'"1\u00002"'), 400, "unstorable_text"),
    ("empty id", "items", item(item_id='""'), 422, "missing_id"),
    ("modified two days ahead", "items",
     item(last_modified_time=json.dumps((dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime(
         "%Y-%m-%dT%H:%M:%S%z"))), 422, "future_last_modified"),
    ("modified in the year 9999", "invoices",
     rb'{"invoice": {"invoice_id": "5", "last_modified_time": "9999-12-31T23:59:59-1500"}}', 422,
     "future_last_modified"),
    ("an offset no time zone has", "invoices",
     rb'{"invoice": {"invoice_id": "5", "last_modified_time": "0001-01-01T00:00:00+2359"}}', 422,
     "invalid_last_modified"),
    ("an event that is not text", "items", b'{"event_type": [[[1]]], "item": {"item_id": "1"}}', 400,
     "invalid_event"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_hostile_body_is_refused_with_its_reason_and_nothing_is_stored(live_api, clean_db, case):
    _, alias, body, status, code = case
    r = live_api.http.post(f"/api/tds/webhooks/{alias}", content=body, headers=HOOK)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert r.json()["message"]
    assert stored(clean_db) == (0, 0)
    assert not errors_logged(live_api)


def test_unstorable_text_in_a_form_body_is_refused_too(live_api, clean_db):
    form = urllib.parse.urlencode({"JSONString": item(name=r'"a\u0000b"').decode()})
    r = live_api.http.post("/api/tds/webhooks/items", content=form,
                           headers={**HOOK, "Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()["error"]) == (400, "unstorable_text"), r.text
    assert "item.name" in r.json()["message"] and "NUL" in r.json()["message"]
    assert stored(clean_db) == (0, 0)


def test_what_zoho_sends_is_still_accepted(live_api, clean_db):
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S%z")  # a clock a bit ahead
    bodies = [item(item_id="4815000000012345678"),  # a JSON number
              item(item_id='"' + "4" * 32 + '"', last_modified_time=json.dumps(soon)),
              item(item_id='"0"', name=r'"\ud83d\ude00 \u202eزيت\u202c \\u0000 is text"')]  # a pair, RTL, a backslash
    for body in bodies:
        r = live_api.http.post("/api/tds/webhooks/items", content=body, headers=HOOK)
        assert r.status_code == 202, (body, r.text)
    assert stored(clean_db) == (3, 3)
    with clean_db.connect() as c:
        name = c.execute(text("SELECT payload #>> '{item,name}' FROM tds_inbox_events "
                              "WHERE payload #>> '{item,item_id}' = '0'")).scalar_one()
    assert name == "\U0001f600 \u202eزيت\u202c \\u0000 is text"


# --- ids on their way to a Zoho URL ---------------------------------------------------------------------


@pytest.fixture
def itds(pull_env, tmp_path):
    from support.pull import Tds

    t = Tds({**pull_env, "TDS_IMAGES_DIR": str(tmp_path / "images")})
    yield t
    t.close()


def zoho_requests(sim) -> int:
    return sum(app.get("requests", 0) for app in sim.stats().get("apps", {}).values())


def test_an_id_that_is_not_a_zoho_id_never_reaches_a_url_and_is_not_tried_again(sim, itds, engine):
    sim.reset(counts={"product": 1})
    spec = entities.get("product")
    bad = ["../contacts", "1%2F..", "١٢٣"]
    with engine.begin() as c:  # list rows naming an image: both the detail read and the image fetch want them
        upsert.apply(c, spec, "zoho", [upsert.Change(make_object("product", zoho_id=z, image_document_id="9"),
                                                     dt.datetime.now(dt.UTC), whole=False) for z in bad])
    client = itds.client("manual")
    for zoho_id in bad:
        with pytest.raises(ZohoInvalidId):
            client.get_object(spec, zoho_id)
    with pytest.raises(Refusal, match="not a Zoho item id"):
        stockitems.chosen(["4815", "١٢٣"])
    before = zoho_requests(sim)
    report = detail.Backfill(itds.config, itds.engine, client).run(names=["product"])
    assert (report.refused, report.images_failed, report.read, report.stopped) == (3, 3, 0, "done"), report
    with engine.connect() as c:
        errors = c.execute(text("SELECT zoho_id, error FROM zoho.item_images ORDER BY 1")).all()
    assert {z for z, _ in errors} == set(bad) and all("not a Zoho id" in e for _, e in errors), errors
    again = detail.Backfill(itds.config, itds.engine, itds.client("manual")).run(names=["product"])
    assert (again.refused, again.images_failed, again.requests) == (0, 0, 0), again
    assert zoho_requests(sim) == before, "nothing was sent for them"


# --- text PostgreSQL cannot store, by pull --------------------------------------------------------------


def test_a_pulled_object_with_unstorable_text_is_stored_made_safe_found_and_read_once(sim, itds, engine):
    sim.reset(counts={"product": 3})
    oid = sim.truth("product")["objects"][0]["id"]
    # As Zoho's JSON can carry it: a NUL, a lone surrogate (orjson refuses it; the standard decoder takes it).
    r = sim.http.patch(f"/_sim/objects/product/{oid}", headers={"Content-Type": "application/json"},
                       content=rb'{"name": "Oil\u00001L", "description": "half \ud83d emoji", "cf\u0000": "x"}')
    assert r.status_code == 200, r.text
    run = itds.sync("product", "full")
    assert run["status"] == "succeeded", run
    with engine.connect() as c:
        row = c.execute(text("SELECT name, raw FROM zoho.products WHERE zoho_id = :id"), {"id": oid}).one()
    assert row.name == "Oil\ufffd1L"
    assert (row.raw["name"], row.raw["description"], row.raw["cf\ufffd"]) == ("Oil\ufffd1L", "half \ufffd emoji", "x")
    findings = datachecks.run(engine, "zoho", "integrity")["findings"]
    assert [(f["zoho_id"], f["entity"]) for f in findings if f["rule"] == "replaced_text"] == [(oid, "product")]

    gets = sim.stats().get("entities", {}).get("product", {}).get("get", 0)
    report = detail.Backfill(itds.config, itds.engine, itds.client("manual")).run(names=["product"])
    assert (report.read, report.current, report.stopped) == (3, 3, "done"), report
    with engine.connect() as c:
        state = c.execute(text("SELECT detail_state, raw->>'description' FROM zoho.products WHERE zoho_id = :id"),
                          {"id": oid}).one()
    assert tuple(state) == ("current", "half \ufffd emoji")
    again = detail.Backfill(itds.config, itds.engine, itds.client("manual")).run(names=["product"])
    assert (again.read, again.requests) == (0, 0), again
    assert sim.stats()["entities"]["product"]["get"] - gets == 3, "each whole object read once, that one too"


# --- random JSON at every alias -------------------------------------------------------------------------

# Pieces of JSON string text: odd but valid escapes and characters (NUL, lone and paired surrogates, RTL marks,
# emoji, Arabic, a combining mark, a BOM, a noncharacter), and a few that break the JSON.
_ODD = ["\\u0000", "\\ud800", "\\udfff", "\\ud83d\\ude00", "\\ud83d", "\\u202e", "\\uffff", "\\\\", '\\"', "\\n",
        "\u202e", "\U0001f600", "زيت", "\u0301", "\ufeff", "\x7f"]
_BROKEN = ["\\x41", "\\", "\t", "\\u12", '"']
_chars = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters='"\\'), max_size=8)


def _string_of(pieces) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(_chars, st.sampled_from(pieces)), max_size=5).map(lambda ps: '"' + "".join(ps) + '"')


_string = st.one_of(_string_of(_ODD), _string_of(_ODD), _string_of(_ODD), _string_of(_ODD + _BROKEN))
_number = st.one_of(st.integers(-(10 ** 40), 10 ** 40).map(str),
                    st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-0", "0.0e0", "01", "1.",
                                     "9" * 400, "4815000000012345678", "-4815000000012345678"]))
_scalar = st.one_of(_string, _number, st.sampled_from(["true", "false", "null"]))


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in members) + "}"


_key = st.one_of(_string, st.sampled_from(['"item_id"', '"name"', '"last_modified_time"', '"event_type"', '"data"']))
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=6).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.lists(st.tuples(_key, inner), max_size=6).map(_object)), max_leaves=20)
_deep = st.integers(1, 1100).flatmap(lambda n: st.sampled_from(["[" * n + "]" * n, '{"a": ' * n + "1" + "}" * n]))
_wide = st.integers(1, 3000).map(lambda n: _object([(f'"k{i % 50}"', str(i)) for i in range(n)]))  # repeated keys
_valid_id = st.sampled_from(['"4815000000000000123"', "4815000000000000123", '"0"', '"' + "9" * 32 + '"'])
_id = st.one_of(_valid_id, _valid_id, _valid_id, _scalar, st.sampled_from(['"1/../2"', '"١٢٣"', "-1", "1.5"]))
_valid_time = st.sampled_from(['"2025-11-13T08:40:00+0300"', '"2025-11-13 08:40:00Z"', '"0001-01-01T00:00:00+2359"',
                               '"9999-12-31T23:59:59+0000"'])
_modified = st.one_of(_valid_time, _valid_time, _valid_time, _scalar)
_value = st.one_of(_json, _json, _json, _deep, _wide)


@st.composite
def _webhook(draw) -> tuple[str, bytes, str]:
    """(alias, raw body, content type): often an envelope with the alias's own keys, so that bodies get past
    parsing into reading, hashing and storing."""
    alias = draw(st.sampled_from(ALIASES))
    spec = entities.resolve(alias)
    extra = draw(st.lists(st.tuples(_key, _value), max_size=4))
    obj = _object([(f'"{spec.id_field}"', draw(_id)), (f'"{spec.last_modified}"', draw(_modified)), *extra])
    envelope = draw(st.sampled_from([spec.object_key, spec.object_key, "data", None, "random"]))
    body = (_object([(f'"{envelope}"', obj)]) if envelope not in (None, "random") else
            obj if envelope is None else draw(_value))
    if draw(st.integers(0, 9)) == 0:
        return alias, urllib.parse.urlencode({"JSONString": body}).encode("utf-8", "surrogatepass"), \
            "application/x-www-form-urlencoded"
    return alias, body.encode("utf-8", "surrogatepass"), "application/json"


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(webhook=_webhook())
def test_random_json_at_every_alias_never_gets_a_5xx(live_api, webhook):
    alias, body, content_type = webhook
    logged = len(live_api.output())
    r = live_api.http.post(f"/api/tds/webhooks/{alias}", content=body,
                           headers={**HOOK, "Content-Type": content_type})
    event(f"{r.status_code} {r.json().get('error', '')}")  # the spread, in --hypothesis-show-statistics
    assert r.status_code < 500, (alias, body[:300], r.status_code, r.text)
    if r.status_code >= 400:
        assert set(r.json()) == {"error", "message"}, r.text
    assert not errors_logged(live_api, since=logged)
