"""The OpenAPI 3.1 document of TDS's HTTP API, served at ``GET /openapi.json``.

Built from this one structure; ``docs/openapi.json`` is a copy (``python -m tds_daemon.api.openapi``
writes it, a test keeps the two equal and the paths equal to the app's routes).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import falcon

from tds_daemon import __version__, entities
from tds_daemon.api.apischemas import ACCEPTED, ALERT, BREAKER, DELIVERY, EVENT, OBJECT, QUEUED, RUN
from tds_daemon.api.auth import Access
from tds_daemon.api.syncruns import BULK
from tds_daemon.apply.events import TYPES as EVENT_TYPES
from tds_daemon.care import jobs
from tds_daemon.care.checkrules import CHECKS
from tds_daemon.guard.alerts import ALERT_STATUSES
from tds_daemon.intake import recent
from tds_daemon.pull.pulls import KINDS
from tds_daemon.pull.stockitems import MAX_ITEMS

ENTITY_NAMES = [e.name for e in entities.ENTITIES]
ENTITY_PATH_NAMES = {"$ref": "#/components/schemas/EntityName"}
ERROR = {"$ref": "#/components/schemas/Error"}
ADMIN = [{"adminBearer": []}]


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, retry_after: bool = False) -> dict:
    answer = _json(ERROR, description)
    if retry_after:
        answer["headers"] = {"Retry-After": {"description": "seconds to wait before trying again",
                                             "schema": {"type": "integer"}}}
    return answer


UNAUTHORIZED = _error("no admin token, or a wrong one (`Authorization: Bearer <api.admin_token>`)")
DB_DOWN = _error("PostgreSQL (or Redis, where the answer needs it) does not answer", retry_after=True)
BAD_PARAM = _error("a query parameter is invalid; the message names it and its known values")


def _admin(summary: str, ok: dict, *, status: str = "200", params: list | None = None, body: dict | None = None,
           errors: dict | None = None, description: str | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "security": ADMIN, "tags": ["admin"],
                          "responses": {status: ok, "401": UNAUTHORIZED, "503": DB_DOWN, **(errors or {})}}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def _path(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _limit(default: int) -> dict:
    return _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": default},
                  "how many, the most recent first")


def _by_id(what: str, summary: str, ok: dict) -> dict:
    """An admin operation on the one ``what`` whose id is in the path (``{what}_id``); 404 when there is none."""
    return _admin(summary, ok, params=[_path(f"{what}_id", {"type": "integer", "minimum": 1}, f"the {what}'s id")],
                  errors={"404": _error(f"no such {what} (ids are positive whole numbers)")})


def _list_of(key: str, item: dict = OBJECT, **more) -> dict:
    return {"type": "object", "required": [key], "properties": {key: {"type": "array", "items": item}, **more}}


WEBHOOK_BODY = {
    "type": "object", "additionalProperties": True,
    "description": "Zoho's default payload {\"<object key>\": {...}}, or {\"data\": {...}}, or the bare object; "
                   "every field is kept. `event_type` (created, updated, deleted) may say the event.",
}

WEBHOOK = {
    "summary": "a Zoho webhook: stored durably, then applied",
    "tags": ["webhooks"],
    "security": [{"webhookToken": []}, {"webhookKey": []}, {"webhookQueryToken": []}],
    "parameters": [
        _path("entity", ENTITY_PATH_NAMES, "an entity name or one of its aliases"),
        _query("event", {"type": "string", "enum": ["created", "updated", "deleted"]},
               "the event (else header X-TDS-Event, else the body's event_type, else updated)"),
        {"name": "X-TDS-Event", "in": "header", "required": False,
         "schema": {"type": "string", "enum": ["created", "updated", "deleted"]}, "description": "the event"},
        {"name": "X-Zoho-Webhook-Signature", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "hex HMAC-SHA256 of the raw body under api.webhook_secret; required when that is set"},
    ],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": WEBHOOK_BODY},
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["JSONString"],
            "properties": {"JSONString": {"type": "string", "description": "the JSON payload as text"}}}},
    }},
    "responses": {
        "202": _json(ACCEPTED, "stored durably (inbox event and sync item committed)"),
        "200": _json(ACCEPTED, "the same delivery was stored before"),
        "400": _error("the body is not valid JSON or form, not an object, nested too deeply, or holds text "
                      "PostgreSQL cannot store (a NUL character, a lone surrogate) or a number no double holds"),
        "401": _error("the webhook token is missing or wrong, or the signature is"),
        "404": _error("unknown entity"),
        "411": _error("no Content-Length"),
        "413": _error("the body is larger than api.max_body_bytes"),
        "415": _error("a content type other than JSON or form"),
        "422": _error("a valid body without the entity's id field, with an id that is not a Zoho id (digits), "
                      "or with an unreadable last-modified time or one more than a day ahead"),
        "503": _error("PostgreSQL unavailable: nothing was stored, send it again", retry_after=True),
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/tds/webhooks/{entity}": {"post": WEBHOOK},
    "/api/tds/webhooks/health": {"get": {
        "summary": "webhook intake summary", "tags": ["health"], "security": [],
        "responses": {"200": _json({"type": "object", "required": ["status"], "properties": {
            "status": {"const": "ok"}, "received_24h": {"type": "integer"}, "queue_size": {"type": "integer"},
            "dead_letter": {"type": "integer"}, "last_received_at": {"type": ["string", "null"]}}},
            "received in 24 h, queue size, dead letters"),
            "503": _json({"type": "object", "properties": {"status": {"const": "unavailable"},
                                                            "message": {"type": "string"}}},
                         "PostgreSQL does not answer")}}},
    "/health/live": {"get": {"summary": "the process serves", "tags": ["health"], "security": [],
                             "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "live"}}},
                                                        "live")}}},
    "/health/ready": {"get": {
        "summary": "PostgreSQL and Redis answer", "tags": ["health"], "security": [],
        "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "ready"}}}, "ready"),
                      "503": _json({"type": "object", "properties": {
                          "status": {"const": "not_ready"},
                          "unavailable": {"type": "array", "items": {"enum": ["postgresql", "redis"]}},
                          "errors": OBJECT}}, "not ready, naming what does not answer")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics of every process", "tags": ["health"], "security": [],
                         "responses": {"200": {"description": "Prometheus text format",
                                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {"summary": "this document", "tags": ["health"], "security": [],
                              "responses": {"200": _json(OBJECT, "the OpenAPI 3.1 document")}}},
    "/api/tds/monitoring/health": {"get": _admin(
        "overall status, queue counts, success rate, alerts, thresholds",
        _json({"type": "object", "required": ["status", "reasons", "queue"], "properties": {
            "status": {"type": "string", "enum": ["healthy", "degraded", "warning", "critical"]},
            "reasons": {"type": "array", "items": {"type": "string"}}, "queue": OBJECT, "by_entity": OBJECT,
            "success_rate_24h": {"type": ["number", "null"]}, "alerts": OBJECT, "thresholds": OBJECT}},
            "the health document (200 whatever the status)"))},
    "/api/tds/monitoring/scheduler/jobs": {"get": _admin(
        "scheduled jobs: id, crontab trigger, next and last run",
        _json({"type": "object", "required": ["jobs"], "properties": {
            "leader": {"type": ["string", "null"]}, "timezone": {"type": "string"},
            "jobs": {"type": "array", "items": {"type": "object", "required": ["id", "trigger"], "properties": {
                "id": {"type": "string"}, "trigger": {"type": "string"}, "enabled": {"type": "boolean"}}}}}},
            "the jobs"))},
    "/api/tds/monitoring/scheduler/jobs/{job_id}/run": {"post": _admin(
        "run a job now, as the scheduler would",
        _json({"type": "object", "required": ["status", "job"], "properties": {
            "status": {"const": "accepted"}, "job": {"type": "string"}, "report": {}}}, "sent"),
        status="202", params=[_path("job_id", {"type": "string", "enum": [j.id for j in jobs.JOBS]}, "the job")],
        errors={"404": _error("unknown job")})},
    "/api/tds/entities": {"get": _admin(
        "every entity type: table, rows, cursor, detail backlog",
        _json(_list_of("entities", {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "enum": ENTITY_NAMES}, "live_rows": {"type": "integer"}}}, detail=OBJECT),
            "the entities"))},
    "/api/tds/sync/{entity}": {"post": _admin(
        "queue a pull of an entity (or all); a run already queued for the same entity and kind is reused",
        _json(QUEUED, "queued; a worker executes it"), status="202",
        params=[_path("entity", {"anyOf": [{"const": "all"}, ENTITY_PATH_NAMES]}, "entity, alias or all"),
                _query("kind", {"type": "string", "enum": list(KINDS)}, "the kind of pull (default incremental)"),
                _query("full", {"type": "boolean"}, "kind=full")],
        errors={"400": BAD_PARAM, "404": _error("unknown entity")})},
    "/api/tds/sync/stock/specific": {"post": _admin(
        "queue a stock refresh of chosen items: a whole-object read each, applied newer-wins; what became of each "
        "id is the run's item_results (GET /api/tds/runs/{id})",
        _json(QUEUED, "queued; a worker executes it"), status="202",
        body={"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["item_ids"], "properties": {"item_ids": {
                "type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                "items": {"type": "string", "pattern": "^[0-9]{1,40}$"}}}}}}},
        errors={"400": _error(f"item_ids is not a list of 1 to {MAX_ITEMS} Zoho item ids (strings of digits)")})},
    "/api/tds/runs": {"get": _admin(
        "recent sync runs", _json(_list_of("runs", RUN), "the runs, newest first"),
        params=[_query("entity", ENTITY_PATH_NAMES, "only this entity"), _limit(50)],
        errors={"400": BAD_PARAM})},
    "/api/tds/runs/{run_id}": {"get": _by_id("run", "one sync run", _json(RUN, "the run"))},
    "/api/tds/auto-healing/run": {"post": _admin(
        "run the healer now; its report", _json(OBJECT, "the healer run's report"))},
    "/api/tds/auto-healing/runs": {"get": _admin(
        "recent healer runs", _json(_list_of("runs"), "the runs"), params=[_limit(20)],
        errors={"400": BAD_PARAM})},
    "/api/tds/stats": {"get": _admin(
        "the latest statistics run and the history",
        _json({"type": "object", "required": ["latest", "history"], "properties": {
            "latest": {"type": ["object", "null"]}, "history": {"type": "array", "items": OBJECT}}}, "stats"),
        params=[_limit(30)], errors={"400": BAD_PARAM})},
    "/api/tds/stats/run": {"post": _admin(
        "queue a statistics run (Zoho counts against local counts)",
        _json({"type": "object", "required": ["status"], "properties": {"status": {"const": "accepted"},
                                                                          "queued": OBJECT}}, "queued"),
        status="202", errors={"400": BAD_PARAM},
        params=[{**_query("entity", {"type": "array", "items": ENTITY_PATH_NAMES},
                          "only these entities (default all)"), "style": "form", "explode": False}])},
    "/api/tds/images/{item_id}": {"get": _admin(
        "an item's current image; ETag is its SHA-256",
        {"description": "the image bytes", "headers": {"ETag": {"schema": {"type": "string"}}},
         "content": {"image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}},
                     "application/octet-stream": {"schema": {"type": "string"}}}},
        params=[_path("item_id", {"type": "string"}, "the item's Zoho id"),
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "a stored ETag: 304 when it is still current"}],
        errors={"304": {"description": "not modified"}, "404": _error("no stored image for the item")})},
    "/api/tds/objects/{entity}/{zoho_id}": {"get": _admin(
        "the story of one object: its row, every delivery of it, its sync items, the pulls that saw it, its image",
        _json({"type": "object", "required": ["entity", "zoho_id", "row", "deliveries", "sync_items", "pulls"],
               "properties": {"entity": {"type": "string", "enum": ENTITY_NAMES}, "zoho_id": {"type": "string"},
                              "table": {"type": "string"}, "row": {"type": ["object", "null"]},
                              "deliveries": {"type": "array", "items": OBJECT},
                              "sync_items": {"type": "array", "items": OBJECT},
                              "pulls": {"type": "array", "items": OBJECT}, "image": {"type": ["object", "null"]},
                              "totals": OBJECT}}, "the story"),
        params=[_path("entity", ENTITY_PATH_NAMES, "entity name or alias"),
                _path("zoho_id", {"type": "string"}, "the object's Zoho id")],
        errors={"404": _error("unknown entity, or TDS knows nothing of this id")})},
    "/api/tds/webhooks/stats": {"get": _admin(
        "webhook intake per entity: stored in the last hour and day, apply latency, duplicates, refusals",
        _json({"type": "object", "required": ["entities", "refused"], "properties": {
            "entities": {"type": "object", "additionalProperties": OBJECT}, "refused": OBJECT,
            "received_1h": {"type": "integer"}, "received_24h": {"type": "integer"}}}, "the figures"))},
    "/api/tds/webhooks/recent": {"get": _admin(
        "the latest deliveries, newest first, each with its outcome (its sync item's state, or duplicate)",
        _json(_list_of("deliveries", DELIVERY, limit={"type": "integer"}), "the deliveries"),
        params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": recent.MAX_LIMIT,
                                 "default": recent.DEFAULT_LIMIT}, "how many, the most recent first"),
                _query("entity", ENTITY_PATH_NAMES, "only this entity"),
                _query("payload", {"type": "boolean"}, "each stored body as payload (a duplicate's is null)")],
        errors={"400": BAD_PARAM})},
    "/api/tds/data-validation/{check}": {"get": _admin(
        "a data check of the local copy: orphans, products or integrity; each finding names the entity, the zoho_id "
        "and what is wrong", _json(_list_of("findings", {"type": "object", "required": [
            "rule", "entity", "zoho_id", "problem"]}, check={"type": "string", "enum": list(CHECKS)},
            total={"type": "integer"}, counts=OBJECT, rules=OBJECT, truncated={"type": "boolean"}),
            "the findings (at most limit per rule and in all) and their counts by entity and rule"),
        params=[_path("check", {"type": "string", "enum": list(CHECKS)}, "the check"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                       "findings returned per rule and in all (the counts are always whole)")],
        errors={"400": BAD_PARAM, "404": _error("unknown check")})},
    "/api/tds/dead-letter": {"get": _admin(
        "dead letters, the most recent failures first",
        _json(_list_of("items", total={"type": "integer"}), "the dead letters and their total"),
        params=[_query("entity", ENTITY_PATH_NAMES, "only this entity"),
                _query("zoho_id", {"type": "string"}, "only this object's"), _limit(100)],
        errors={"400": BAD_PARAM})},
    "/api/tds/dead-letter/replay": {"post": _admin(
        "replay dead letters: by ids, by entity, or all",
        _json({"type": "object", "required": ["replayed", "skipped"], "properties": {
            "replayed": {"type": "integer"}, "skipped": {"type": "integer"}}}, "how many were replayed"),
        body={"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": {
                "ids": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "entity": ENTITY_PATH_NAMES, "all": {"type": "boolean"}}}}}},
        errors={"400": _error("no selector, or an invalid one (an unknown entity among them)")})},
    "/api/tds/circuit-breakers": {"get": _admin(
        "every circuit breaker's state",
        _json(_list_of("breakers", BREAKER, settings=OBJECT), "the breakers"))},
    "/api/tds/circuit-breakers/{name}/reset": {"post": _admin(
        "close a breaker now; its deferred items become due",
        _json({"type": "object", "required": ["status", "previous_state", "breaker"], "properties": {
            "status": {"const": "reset"}, "previous_state": {"type": "string"}, "breaker": BREAKER,
            "deferred_items_released": {"type": ["integer", "null"]}}}, "reset"),
        params=[_path("name", {"type": "string", "enum": ["entity:" + n for n in ENTITY_NAMES]
                               + ["zoho:books", "zoho:inventory"]}, "the breaker's name")],
        errors={"404": _error("unknown breaker")})},
    "/api/tds/events": {"get": _admin(
        "the events (every change applied, every pull run ended) after a cursor, oldest first",
        _json(_list_of("events", EVENT, next={"type": "integer", "description": "ask again with after=next"}),
              "the events"),
        params=[_query("after", {"type": "integer", "minimum": 0, "default": 0}, "the last event id you have"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "how many"),
                _query("type", {"type": "string", "enum": list(EVENT_TYPES)}, "only events of this type"),
                _query("entity", {"type": "string"}, "only events of this entity")],
        errors={"400": BAD_PARAM})},
    "/api/tds/events/replay": {"post": _admin(
        "push a subscriber's dead letters again (all of them, or the events named)",
        _json({"type": "object", "required": ["replayed"], "properties": {"replayed": {"type": "integer"}}},
              "how many were asked for again"),
        body={"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "subscriber": {"type": "string", "description": "the subscriber's URL; none: every subscriber"},
            "event_ids": {"type": "array", "items": {"type": "integer", "minimum": 1}}}}}}},
        errors={"400": _error("the body is not as described")})},
    "/api/tds/alerts": {"get": _admin(
        "alerts, the most recently seen first",
        _json(_list_of("alerts", ALERT, count={"type": "integer"}), "the alerts"),
        params=[_query("status", {"type": "string", "enum": list(ALERT_STATUSES), "default": "open"}, "which"),
                _limit(100)],
        errors={"400": BAD_PARAM})},
    "/api/tds/alerts/{alert_id}/acknowledge": {"post": _by_id(
        "alert", "acknowledge an alert (it stays open until its condition clears)", _json(ALERT, "the alert"))},
    "/api/zoho/bulk-sync/status": {"get": _admin(
        "runs in progress and each entity's latest run (the previous system's endpoint)",
        _json({"type": "object", "required": ["in_progress", "latest"], "properties": {
            "in_progress": {"type": "array", "items": RUN}, "latest": {"type": "object",
                                                                        "additionalProperties": RUN}}}, "status"))},
    "/api/zoho/bulk-sync/{what}": {"post": _admin(
        "full pulls, as the previous system's bulk endpoints; runs already queued are reused",
        _json(QUEUED, "queued"), status="202",
        params=[_path("what", {"type": "string", "enum": list(BULK)}, "what to pull")],
        errors={"404": _error("unknown bulk sync")})},
    "/dashboard": {"get": {
        "summary": "the operator's page; without a session, the login form (a password field `token`)",
        "tags": ["dashboard"], "security": [],
        "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/dashboard/login": {"post": {
        "summary": "the admin token opens a session (a signed HttpOnly SameSite=Strict cookie)",
        "tags": ["dashboard"], "security": [],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
        "responses": {"303": {"description": "signed in: back to /dashboard, with the session cookie"},
                      "401": {"description": "a wrong or missing token: the login form again",
                              "content": {"text/html": {"schema": {"type": "string"}}}},
                      "411": _error("no Content-Length"), "413": _error("a body over api.max_body_bytes"),
                      "429": {"description": "five wrong tokens from this address this minute: the form, closed "
                              "until Retry-After", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/dashboard/logout": {"post": {
        "summary": "end the session (its CSRF token in X-CSRF-Token)", "tags": ["dashboard"],
        "security": [{"dashboardSession": []}],
        "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "logged_out"}}}, "done"),
                      "401": UNAUTHORIZED, "403": _error("the CSRF token is missing or wrong")}}},
    "/dashboard/static/{name}": {"get": {
        "summary": "the page's script and style sheet, shipped in the package", "tags": ["dashboard"],
        "security": [], "parameters": [_path("name", {"type": "string"}, "the file")],
        "responses": {"200": {"description": "the file", "content": {"text/javascript": {"schema": {"type": "string"}},
                                                                     "text/css": {"schema": {"type": "string"}}}},
                      "404": _error("no such file")}}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "TDS", "version": __version__,
                 "description": "Zoho Books / Inventory webhooks in, a PostgreSQL copy kept fresh; the admin API "
                                "and health. Every error answer is {\"error\": code, \"message\": what to do}."},
        "paths": PATHS,
        "components": {
            "schemas": {
                "EntityName": {"type": "string", "description": "an entity name or one of its aliases",
                               "enum": [n for e in entities.ENTITIES for n in (e.name, *e.aliases)]},
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string", "description": "a stable code"},
                "message": {"type": "string", "description": "what to do, for a person"}}}},
            "securitySchemes": {
                "adminBearer": {"type": "http", "scheme": "bearer", "description": "api.admin_token"},
                "dashboardSession": {"type": "apiKey", "in": "cookie", "name": "tds_session",
                                     "description": "the dashboard's session (POST /dashboard/login); it also "
                                                    "opens the admin API, whose POSTs then need X-CSRF-Token"},
                "webhookToken": {"type": "apiKey", "in": "header", "name": "X-TDS-Webhook-Token",
                                 "description": "api.webhook_token, compared in constant time"},
                "webhookKey": {"type": "apiKey", "in": "header", "name": "X-Webhook-Key",
                               "description": "api.webhook_token, in the previous system's header"},
                "webhookQueryToken": {"type": "apiKey", "in": "query", "name": "token",
                                      "description": "api.webhook_token in the query string (ends up in logs of "
                                                     "proxies: prefer a header)"},
            },
        },
    }


def dumps() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


class OpenApiResource:
    access = Access.OPEN

    def __init__(self):
        self.body = dumps().encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body


if __name__ == "__main__":
    sys.stdout.write(dumps())
