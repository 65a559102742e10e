"""Faults and run-time knobs, settable at start (CLI) and at run time (``POST /_sim/faults``).

Injected errors (``error_rate``), ``latency_ms``, ``down`` (503, or connections reset), the lifetime of new
tokens, webhooks fired on changes (``fire_webhooks``), bad item image answers (``image_fault``), and
``expire_tokens``, an action: every token issued so far stops working. The limits live in ``limits.py``.
Each fault's values: docs/ARCHITECTURE.md, "The Zoho simulator".
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields

from tds_daemon.simulator.images import DEFAULT_OVERSIZE, IMAGE_FAULTS

DOWN_MODES = ("", "503", "refuse")
FORMATS = ("default", "data", "bare", "form")


@dataclass
class FaultState:
    error_rate: float = 0.0
    latency_ms: int = 0
    down: str = ""
    token_ttl_s: int = 3600
    fire_webhooks: dict | None = None
    image_fault: str | None = None
    image_oversize_bytes: int = DEFAULT_OVERSIZE


def _check(name: str, value):
    if name == "error_rate":
        value = float(value)
        if not 0 <= value <= 1:
            raise ValueError("error_rate must be between 0 and 1")
    elif name in ("latency_ms", "token_ttl_s"):
        value = int(value)
        if value < 0 or (name == "token_ttl_s" and value == 0):
            raise ValueError(f"{name} must be {'positive' if name == 'token_ttl_s' else 'zero or more'}")
    elif name == "down":
        value = "503" if value is True else "" if value is False or value is None else str(value)
        if value not in DOWN_MODES:
            raise ValueError(f"down must be one of {DOWN_MODES} (or true/false)")
    elif name == "fire_webhooks" and value is not None:
        if not isinstance(value, dict) or not value.get("url"):
            raise ValueError("fire_webhooks must be null or {\"url\": ..., \"token\": ..., \"format\": ...}")
        if value.get("format", "default") not in FORMATS:
            raise ValueError(f"fire_webhooks.format must be one of {FORMATS}")
    elif name == "image_fault":
        value = value or None
        if value is not None and value not in IMAGE_FAULTS:
            raise ValueError(f"image_fault must be null or one of {IMAGE_FAULTS}")
    elif name == "image_oversize_bytes":
        if isinstance(value, bool) or int(value) != value or value < 64:
            raise ValueError("image_oversize_bytes must be a whole number of bytes, 64 or more")
        value = int(value)
    return value


class Faults:
    def __init__(self, seed: int = 1, **initial):
        self.lock = threading.Lock()
        self.state = FaultState()
        self.rng = random.Random(f"tds-sim-faults:{seed}")
        self.update(initial)

    def update(self, changes: dict) -> FaultState:
        """Validate everything first, then apply: a bad request changes nothing. ValueError."""
        known = {f.name for f in fields(FaultState)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(known)}")
        checked = {name: _check(name, value) for name, value in changes.items()}
        with self.lock:
            for name, value in checked.items():
                setattr(self.state, name, value)
            return FaultState(**asdict(self.state))

    def snapshot(self) -> FaultState:
        with self.lock:
            return FaultState(**asdict(self.state))

    def roll(self) -> int | None:
        """The status to inject for this API call (500 or 503), or None."""
        with self.lock:
            if self.state.error_rate <= 0 or self.rng.random() >= self.state.error_rate:
                return None
            return 500 if self.rng.random() < 0.5 else 503
