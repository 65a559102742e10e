"""Reading a webhook delivery: body formats, the entity object, its id, time and event type.

Pure functions, no I/O: the API calls them before storing, and the apply core
(``tds_daemon.apply.items``) calls ``extract_object`` (the registry's, ``tds_daemon.entities``, named
here too) again on the stored body, so the two can never disagree about what a delivery meant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tds_daemon import jsoncodec, zohovalues
from tds_daemon.entities import EntitySpec, extract_object

EVENTS = ("created", "updated", "deleted")
_EVENT_ALIASES = {"create": "created", "created": "created", "update": "updated", "updated": "updated",
                  "edit": "updated", "edited": "updated", "delete": "deleted", "deleted": "deleted"}


_TOO_DEEP = "body is nested too deeply to be stored; send Zoho's payload as it is"
# A last-modified time further ahead than this is refused: stored, it would win over every real change
# until the clock reached it (newer wins).
FUTURE_LIMIT = dt.timedelta(days=1)


class Rejected(Exception):
    """A delivery TDS will not store; ``status`` is the HTTP answer, ``code`` and ``message`` its body."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Delivery:
    spec: EntitySpec
    zoho_id: str
    event_type: str
    zoho_last_modified: Any  # datetime | None
    body: dict  # the whole parsed body, kept as sent
    idempotency_key: str


def parse_body(raw: bytes, content_type: str | None) -> dict:
    """JSON or form-encoded (field ``JSONString``) → the parsed object, every value of which PostgreSQL can
    store. Raises Rejected."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("application/json", "text/json") or media.endswith("+json"):
        text = _decode(raw)
    elif media == "application/x-www-form-urlencoded":
        form = parse_qs(_decode(raw), keep_blank_values=True)
        if "JSONString" not in form:
            raise Rejected(400, "missing_jsonstring",
                           "form-encoded webhooks must carry the JSON in the field JSONString")
        text = form["JSONString"][0]
    else:
        raise Rejected(415, "unsupported_media_type",
                       f"content type {media or '(none)'} is not accepted; send application/json or "
                       "application/x-www-form-urlencoded with a JSONString field")
    try:
        doc = jsoncodec.loads(text)
    except jsoncodec.TooDeep:
        raise Rejected(400, "too_deep", _TOO_DEEP) from None
    except jsoncodec.OutOfRange as e:
        raise Rejected(400, "number_out_of_range", f"{e}; send numbers a double can hold") from None
    except ValueError as e:
        raise Rejected(400, "invalid_json", f"body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "not_an_object", "body must be a JSON object")
    problem = zohovalues.unstorable(doc)
    if problem:
        raise Rejected(400, "unstorable_text", f"{problem[:200]}: PostgreSQL cannot store it and Zoho never "
                       "sends it; correct the text and send it again")
    return doc


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "invalid_encoding", "body must be UTF-8") from None


def event_type(body: dict, query_event: str | None, header_event: str | None) -> str:
    for source, value in (("event", query_event), ("X-TDS-Event", header_event),
                          ("event_type", body.get("event_type"))):
        if value:
            event = _EVENT_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
            if event is None:
                got = repr(value[:40]) if isinstance(value, str) else f"a JSON {type(value).__name__}"
                raise Rejected(400, "invalid_event", f"{source} must be one of created, updated, deleted; got {got}")
            return event
    return "updated"


def read(spec: EntitySpec, body: dict, query_event: str | None = None,
         header_event: str | None = None) -> Delivery:
    """The delivery ``body`` (from ``parse_body``) makes: its id checked to be a Zoho id (it may go into a
    URL path later) and its last-modified time not beyond FUTURE_LIMIT. Raises Rejected."""
    obj = extract_object(spec, body)
    value = obj.get(spec.id_field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Rejected(422, "missing_id",
                       f"the {spec.name} object has no {spec.id_field}; send Zoho's default payload "
                       f'{{"{spec.object_key}": {{"{spec.id_field}": "...", ...}}}}')
    try:
        zoho_id = zohovalues.checked_id(value)
    except zohovalues.InvalidValue as e:
        raise Rejected(422, "invalid_id", f"{spec.id_field}: {e}") from None
    event = event_type(body, query_event, header_event)
    modified = None
    if spec.last_modified:
        try:
            modified = zohovalues.parse_timestamp(obj.get(spec.last_modified))
        except zohovalues.InvalidValue as e:
            raise Rejected(422, "invalid_last_modified", f"{spec.last_modified}: {e}") from None
        if modified is not None and modified > dt.datetime.now(dt.UTC) + FUTURE_LIMIT:
            raise Rejected(422, "future_last_modified",
                           f"{spec.last_modified} {modified.isoformat()} is more than a day ahead of TDS's clock; "
                           "stored, it would hide every later change of this object. Check the sender's clock")
    # The same entity, id and last-modified time (or, without one, the same content) is the same
    # delivery: Zoho's duplicates are recognised, real changes are not mistaken for duplicates.
    try:
        version = modified.isoformat() if modified else hashlib.sha256(
            json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    except RecursionError:
        raise Rejected(400, "too_deep", _TOO_DEEP) from None
    key = f"{spec.name}:{zoho_id}:{event}:{version}"
    return Delivery(spec, zoho_id, event, modified, body, key)


def dump_body(body: dict) -> str:
    """The body as stored: JSON text, every field kept. Raises Rejected if it cannot be written back."""
    try:
        return jsoncodec.dumps(body)
    except jsoncodec.TooDeep:
        raise Rejected(400, "too_deep", _TOO_DEEP) from None
