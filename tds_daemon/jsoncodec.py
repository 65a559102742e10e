"""JSON for the hot paths (Zoho pages in, ``raw`` JSONB out): orjson, with the standard library behind it.

orjson decodes and encodes Zoho's objects several times faster than ``json``, a measurable share of
a full sync's CPU (see docs/PERFORMANCE.md). It refuses integers beyond 64 bits, which ``json``
keeps exactly; such a document falls back to ``json`` instead of failing.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # raises the standard error if it is really not JSON


def dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, or a type it does not know
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
