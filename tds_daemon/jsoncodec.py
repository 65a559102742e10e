"""JSON for the hot paths (Zoho pages in, ``raw`` JSONB out): orjson, with the standard library behind it.

orjson is used because JSON work is a large share of the CPU of intake and of pulls
(docs/PERFORMANCE.md). But it decodes an integer beyond 64 bits as a float,
silently rounding it, and refuses to encode one; ``json`` keeps such integers exactly. So a document
with an integer of 19 digits or more goes to ``json`` (a cheap scan finds it first), and so does one
orjson cannot encode. A document nested deeper than either can go raises ``TooDeep`` (a ValueError), never
RecursionError; one with a number no double holds (``1e400``; ``NaN`` and ``Infinity``, which are not JSON)
raises ``OutOfRange`` (a ValueError), never a value silently changed (orjson would write such a float as null).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# An integer value (after ":", "[" or ",", or the whole document) of 19 digits or more: perhaps beyond 64
# bits. Text in a string that looks like one only costs that document the slower decoder.
_LONG_INT = re.compile(rb"[:\[,]\s*-?\d{19}")
_LONG_DOC = re.compile(rb"\s*-?\d{19}")
# Before those patterns, a cheaper test that most documents fail: 19 digits in a row anywhere (every digit
# made "0" by a byte table, then one substring search), so that the common document never runs the
# regular expressions, which would try every position of the body.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
_INF = float("inf")


class TooDeep(ValueError):
    """Nested deeper than the decoder or encoder can go."""

    def __init__(self):
        super().__init__("JSON nested too deeply")


class OutOfRange(ValueError):
    """A number beyond what a double holds, or NaN or Infinity."""


def _float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise OutOfRange(f"the number {text[:40]}{'...' if len(text) > 40 else ''} is beyond what can be stored")
    return value


def _constant(name: str):
    raise OutOfRange(f"{name} is not a JSON number")


def _standard(data: bytes | str) -> Any:
    """The standard library's decoder, refusing the numbers orjson refuses too."""
    return json.loads(data, parse_float=_float, parse_constant=_constant)


def _may_hold_long_int(data: bytes) -> bool:
    if _NINETEEN_DIGITS not in data.translate(_DIGITS_TO_ZERO):
        return False
    return bool(_LONG_INT.search(data) or _LONG_DOC.match(data))


def loads(data: bytes | str) -> Any:
    try:
        if _may_hold_long_int(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")):
            return _standard(data)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return _standard(data)  # raises the standard error if it is really not JSON
    except RecursionError:
        raise TooDeep() from None


def dumps(obj: Any) -> str:
    return dumpb(obj).decode()


def dumpb(obj: Any) -> bytes:
    """``dumps`` as UTF-8 bytes (an HTTP body)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a type it does not know, depth > 255
        try:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        except RecursionError:
            raise TooDeep() from None
