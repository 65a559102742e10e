"""JSON for the hot paths (Zoho pages in, ``raw`` JSONB out): orjson, with the standard library behind it.

orjson decodes and encodes Zoho's objects several times faster than ``json``, a measurable share of
a full sync's CPU (see docs/PERFORMANCE.md). But it decodes an integer beyond 64 bits as a float,
silently rounding it, and refuses to encode one; ``json`` keeps such integers exactly. So a document
with an integer of 19 digits or more goes to ``json`` (a cheap scan finds it first), and so does one
orjson cannot encode.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# An integer value (first, or after ":", "[" or ",") of 19 digits or more: perhaps beyond 64 bits. Text in a
# string that looks like one only costs that document the slower decoder.
_LONG_INT = re.compile(rb"(?:^|[:\[,])\s*-?\d{19}")
_LONG_INT_STR = re.compile(r"(?:^|[:\[,])\s*-?\d{19}")


def loads(data: bytes | str) -> Any:
    if (_LONG_INT if isinstance(data, bytes) else _LONG_INT_STR).search(data):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # raises the standard error if it is really not JSON


def dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, or a type it does not know
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
