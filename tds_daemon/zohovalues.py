"""Turning Zoho's JSON values into typed column values.

Zoho writes timestamps as ``2025-11-13T08:40:00+0300`` (offset without a colon), dates as
``2025-11-13``, money as numbers or strings, and ids as 19-digit numbers that some clients send as
JSON numbers: every id is kept as a string.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

# The typed numeric columns are numeric(NUMERIC_PRECISION, NUMERIC_SCALE) (tds_daemon.store.schema). A larger
# value is refused here, as a field the column cannot hold, instead of by PostgreSQL as an overflow.
NUMERIC_PRECISION, NUMERIC_SCALE = 20, 6
_NUMERIC_LIMIT = Decimal(10) ** (NUMERIC_PRECISION - NUMERIC_SCALE)
_NUMERIC_STEP = Decimal(10) ** -NUMERIC_SCALE


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
