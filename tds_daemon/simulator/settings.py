"""What the simulator is started with: credentials it accepts, volumes, limits.

Fault knobs that change at run time live in ``faults.py``; these are fixed until ``/_sim/reset``
(which may change seed, scale and counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tds_daemon import entities

# Objects generated per entity at scale 1.0: the seeds' volumes (1,312 items, 2,503 customers) and
# plausible counts for the rest. An entity missing here (a newly registered one) gets DEFAULT_COUNT.
DEFAULT_COUNTS: dict[str, int] = {
    "product": 1312, "customer": 2503, "vendor": 180, "invoice": 3000, "sales_order": 1500,
    "payment": 1200, "bill": 600, "credit_note": 150, "stock_adjustment": 300, "price_list": 12,
    "user": 25, "branch": 4, "sales_return": 120,
}
DEFAULT_COUNT = 50


@dataclass
class Settings:
    client_id: str = "sim-client"
    client_secret: str = "sim-secret"
    refresh_token: str = "sim-refresh"
    organization_id: str = "600000001"
    organization_name: str = "شركة المحاكاة التجارية (TDS Simulator)"
    seed: int = 1
    scale: float = 1.0
    counts: dict[str, int] = field(default_factory=dict)  # per-entity overrides, win over scale
    rate_limit: int = 100  # requests per minute per app per organization; 0 = off
    daily_limit: int = 0  # requests per day per organization, all apps (code 45); 0 = off
    max_concurrency: int = 0  # requests of the organization in flight at once, all apps; 0 = off
    refresh_limit: int = 10  # access tokens per refresh token per refresh_window_s; 0 = off
    refresh_window_s: float = 600.0
    # Price lists, users and branches: the registry says their last-modified field *may be absent*;
    # True gives them a last_modified_time anyway (to try the other answer without a code change).
    last_modified_everywhere: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        for name in ("rate_limit", "daily_limit", "max_concurrency", "refresh_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be zero (off) or more")

    def count(self, entity: str) -> int:
        if entity in self.counts:
            return max(0, int(self.counts[entity]))
        base = DEFAULT_COUNTS.get(entity, DEFAULT_COUNT)
        if self.scale <= 0:
            return 0
        return max(1, round(base * self.scale))

    def volumes(self) -> dict[str, int]:
        return {e.name: self.count(e.name) for e in entities.ENTITIES}


def parse_counts(items: list[str]) -> dict[str, int]:
    """``["product=100", "customer=50"]`` → counts; ValueError names the bad item."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        spec = entities.resolve(name.strip())
        if not sep or spec is None:
            raise ValueError(f"--count {item!r}: expected ENTITY=N with ENTITY one of {', '.join(entities.BY_NAME)}")
        try:
            out[spec.name] = int(value)
        except ValueError:
            raise ValueError(f"--count {item!r}: {value!r} is not a whole number") from None
    return out
