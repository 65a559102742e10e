"""The JSON schemas of answers the OpenAPI document (``openapi.py``) names in more than one place, or at length."""

from __future__ import annotations

from tds_daemon.apply.events import TYPES as EVENT_TYPES
from tds_daemon.pull.pulls import KINDS

OBJECT = {"type": "object"}  # a JSON object whose fields this document does not list one by one
_TEXT = {"type": ["string", "null"]}

RUN = {"type": "object", "required": ["id", "entity_type", "kind", "status"], "properties": {
    "id": {"type": "integer"}, "entity_type": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)},
    "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "skipped"]},
    "origin": {"type": "string"}, "error": {"type": ["string", "null"]},
    "item_ids": {"type": ["array", "null"], "items": {"type": "string"}, "description": "a run of these items only"},
    "item_results": {"type": ["object", "null"], "description": "a run of chosen items: {id: {outcome, ...}}"}}}
QUEUED = {"type": "object", "required": ["status", "runs"], "properties": {
    "status": {"const": "accepted"},
    "runs": {"type": "array", "items": {"type": "object", "required": ["id", "entity", "kind", "status", "reused"],
                                       "properties": {"id": {"type": "integer"}, "entity": {"type": "string"},
                                                      "kind": {"type": "string"}, "status": {"const": "queued"},
                                                      "reused": {"type": "boolean"}}}}}}
EVENT = {"type": "object", "required": ["id", "type", "timestamp", "data"], "properties": {
    "id": {"type": "integer"}, "type": {"type": "string", "enum": list(EVENT_TYPES)},
    "timestamp": {"type": "string", "format": "date-time"}, "data": OBJECT}}
ALERT = {"type": "object", "required": ["id", "type", "severity", "message"], "properties": {
    "id": {"type": "integer"}, "type": {"type": "string"}, "severity": {"type": "string"},
    "entity": {"type": ["string", "null"]}, "message": {"type": "string"},
    "acknowledged_at": {"type": ["string", "null"]}, "resolved_at": {"type": ["string", "null"]}}}
BREAKER = {"type": "object", "required": ["name", "state"], "properties": {
    "name": {"type": "string"}, "state": {"type": "string", "enum": ["closed", "half_open", "open"]}}}
ACCEPTED = {"type": "object", "required": ["status", "event_id"], "properties": {
    "status": {"type": "string", "enum": ["accepted", "duplicate"]}, "event_id": {"type": "integer"}}}
DELIVERY = {"type": "object", "required": ["event_id", "entity", "zoho_id", "event", "received", "outcome"],
            "properties": {
    "event_id": {"type": "integer", "description": "the stored event (for a duplicate, the one it repeats)"},
    "entity": {"type": "string"}, "zoho_id": {"type": "string"},
    "event": {"type": "string", "enum": ["created", "updated", "deleted"]},
    "received": {"type": "string", "format": "date-time"}, "zoho_last_modified": _TEXT,
    "outcome": {"type": "string", "enum": ["pending", "processing", "completed", "failed", "dead_letter",
                                                "duplicate", "unknown"]},
    "applied": _TEXT, "duplicate": {"type": "boolean"}, "sync_item_id": {"type": ["integer", "null"]},
    "attempts": {"type": ["integer", "null"]}, "error_code": _TEXT, "error_message": _TEXT,
    "payload": {"type": ["object", "null"], "description": "the stored body; only with ?payload=1"}}}
