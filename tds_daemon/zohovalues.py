"""Turning Zoho's JSON values into typed column values.

Zoho writes timestamps as ``2025-11-13T08:40:00+0300`` (offset without a colon), dates as
``2025-11-13``, money as numbers or strings, and ids as 19-digit numbers that some clients send as
JSON numbers: every id is kept as a string. An id that goes into a URL path is first checked to be a
Zoho id (``checked_id``); text PostgreSQL cannot store is found (``unstorable``) or made safe (``storable``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

# The typed numeric columns are numeric(NUMERIC_PRECISION, NUMERIC_SCALE) (tds_daemon.store.schema). A larger
# value is refused here, as a field the column cannot hold, instead of by PostgreSQL as an overflow.
NUMERIC_PRECISION, NUMERIC_SCALE = 20, 6
_NUMERIC_LIMIT = Decimal(10) ** (NUMERIC_PRECISION - NUMERIC_SCALE)
_NUMERIC_STEP = Decimal(10) ** -NUMERIC_SCALE
_MAX_OFFSET = dt.timedelta(hours=15, minutes=59, seconds=59)  # PostgreSQL's bound; real zones are within ±14:00
MAX_ID_DIGITS = 32  # Zoho's ids are 18-19 digits
# What PostgreSQL cannot hold in text or jsonb: the NUL character, and a surrogate code point on its own
# (JSON can write one, "\ud800", but it is not a character: UTF-8 cannot encode it).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"  # what ``storable`` puts in their place


class InvalidValue(ValueError):
    """A field holds a value its column cannot take (a permanent error: the payload is wrong)."""


def parse_timestamp(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"expected a Zoho timestamp such as 2025-11-13T08:40:00+0300, got {value!r}")
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)  # 3.11 accepts +0300 as well as +03:00
    except ValueError:
        raise InvalidValue(f"expected a Zoho timestamp such as 2025-11-13T08:40:00+0300, got {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidValue(f"timestamp {value!r} has no UTC offset")
    if abs(parsed.utcoffset()) > _MAX_OFFSET:
        raise InvalidValue(f"timestamp {value!r} has a UTC offset beyond ±15:59, which no time zone has")
    return parsed


def zoho_id(value: Any) -> str | None:
    """An id as a string; accepts JSON numbers (ints) and digit strings."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def checked_id(value: Any) -> str:
    """The Zoho id ``value`` as the text that may go into a URL path: a JSON integer >= 0 or a string of ASCII
    digits, at most MAX_ID_DIGITS long. Anything else (letters, ``../``, ``%2F``, spaces, other scripts'
    digits, signs, floats, booleans) raises InvalidValue, so that it never reaches Zoho as part of a path."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** MAX_ID_DIGITS:
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_DIGITS and value.isascii() and value.isdigit():
        return value
    shown = repr(value)[:60]
    raise InvalidValue(f"{shown} is not a Zoho id: a Zoho id is a string of at most {MAX_ID_DIGITS} digits "
                       '(or a whole number), e.g. "4815000000044137"')


def is_zoho_id(value: Any) -> bool:
    try:
        checked_id(value)
    except InvalidValue:
        return False
    return True


def _problem(text: str, where: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    what = "a NUL character (\\u0000)" if found.group() == "\x00" else \
        f"a lone surrogate (\\u{ord(found.group()):04x}), which is not a character"
    return f"{where} holds {what}"


def unstorable(doc: Any) -> str | None:
    """What in the parsed JSON ``doc`` PostgreSQL cannot store, said with where it is (``item.name``), or
    None: a NUL character or a lone surrogate in any key or string, at any depth.

    The common document costs one encoding (which refuses a surrogate, and writes a NUL as an escape):
    only a suspect one is walked, to say where."""
    try:
        if b"\\u0000" not in orjson.dumps(doc):
            return None
    except TypeError:  # a surrogate; or an integer beyond 64 bits, or depth beyond 255
        try:
            text = json.dumps(doc, ensure_ascii=False)  # writes a NUL as an escape, a surrogate as it is
        except (RecursionError, ValueError):
            text = None
        if text is not None and "\\u0000" not in text and not _SURROGATE.search(text):
            return None
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        problem = None
        if isinstance(value, str):
            problem = _problem(value, f"the value of {path or 'the body'}")
        elif isinstance(value, dict):
            for key, inner in value.items():
                here = f"{path}.{key}" if path else str(key)
                problem = _problem(key, f"the key {here!r}") if isinstance(key, str) else None
                if problem:
                    break
                stack.append((inner, here))
        elif isinstance(value, list):
            stack.extend((inner, f"{path}[{i}]") for i, inner in enumerate(value))
        if problem:
            return problem
    return None


def storable(doc: Any) -> tuple[Any, list[str]]:
    """``doc`` with every NUL character and lone surrogate (in keys and strings, at any depth) replaced by
    REPLACEMENT, and where they were (paths such as ``item.name``, themselves made safe to log); ``doc``
    itself, not a copy, when there were none."""
    if unstorable(doc) is None:
        return doc, []
    found: list[str] = []

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, str):
            if _UNSTORABLE.search(value) is None:
                return value
            found.append(path or "(the body)")
            return _UNSTORABLE.sub(REPLACEMENT, value)
        if isinstance(value, dict):
            out = {}
            for key, inner in value.items():
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    key = _UNSTORABLE.sub(REPLACEMENT, key)
                    found.append(f"key {path}.{key}" if path else f"key {key}")
                here = f"{path}.{key}" if path else str(key)
                out[key] = clean(inner, here)
            return out
        if isinstance(value, list):
            return [clean(inner, f"{path}[{i}]") for i, inner in enumerate(value)]
        return value

    return clean(doc, ""), found


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _numeric(v: Any) -> Decimal:
    if isinstance(v, bool):
        raise InvalidValue(f"expected a number, got {v!r}")
    try:
        d = Decimal(str(v).replace(",", "")) if isinstance(v, str) else Decimal(str(v))
    except InvalidOperation:
        raise InvalidValue(f"expected a number, got {v!r}") from None
    if not d.is_finite():
        raise InvalidValue(f"expected a finite number, got {v!r}")
    # PostgreSQL rounds to the scale (half away from zero) before it checks the precision.
    if abs(d) >= _NUMERIC_LIMIT or abs(d.quantize(_NUMERIC_STEP, rounding=ROUND_HALF_UP)) >= _NUMERIC_LIMIT:
        raise InvalidValue(f"{v!r} is too large: the column holds numbers below 10^"
                           f"{NUMERIC_PRECISION - NUMERIC_SCALE} with {NUMERIC_SCALE} decimals")
    return d


def _date(v: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        raise InvalidValue(f"expected a date such as 2025-11-13, got {v!r}") from None


def _boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "1", "yes"):
        return True
    if str(v).lower() in ("false", "0", "no"):
        return False
    raise InvalidValue(f"expected true or false, got {v!r}")


_CONVERT = {"text": _text, "numeric": _numeric, "date": _date, "timestamptz": parse_timestamp,
            "boolean": _boolean}


def convert(kind: str, value: Any) -> Any:
    """Convert one field; empty values are NULL. Raises InvalidValue."""
    if value is None or value == "":
        return None
    return _CONVERT[kind](value)
