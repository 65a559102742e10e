"""The simulator's state as one object: settings, objects, tokens, limits, faults, stats.

The Falcon resources (``app.py``, ``control.py``) hold one ``Simulator`` and nothing else.
"""

from __future__ import annotations

from tds_daemon import entities
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator import webhooks
from tds_daemon.simulator.faults import Faults
from tds_daemon.simulator.limits import RateLimiter
from tds_daemon.simulator.settings import Settings
from tds_daemon.simulator.stats import Stats
from tds_daemon.simulator.store import Store
from tds_daemon.simulator.tokens import Tokens
from tds_daemon.simulator.zohotime import now_epoch

APPS = {"books": "/books/v3", "inventory": "/inventory/v1"}

# Entities Zoho serves from both apps (same organization, same objects), beyond the app the
# registry names. From both apps' API reference indexes; *unconfirmed* in detail, and harmless:
# it only adds routes (each app keeps its own rate limit).
ALSO_SERVED: dict[str, tuple[str, ...]] = {
    "product": ("books",), "customer": ("inventory",), "vendor": ("inventory",), "invoice": ("inventory",),
    "sales_order": ("books",), "payment": ("inventory",), "bill": ("inventory",), "credit_note": ("inventory",),
    "price_list": ("inventory",), "user": ("inventory",),
}


def routes(app: str) -> dict[str, list[EntitySpec]]:
    """Collection (list path without the slash) → the specs it serves in ``app``; specs sharing a
    path (customers and vendors on /contacts) are told apart by their ``list_params``."""
    out: dict[str, list[EntitySpec]] = {}
    for spec in entities.ENTITIES:
        if spec.app == app or app in ALSO_SERVED.get(spec.name, ()):
            out.setdefault(spec.list_path.strip("/"), []).append(spec)
    for collection, specs in out.items():
        assert len({s.list_key for s in specs}) == 1, f"/{collection} has two list keys"
    return out


class Simulator:
    def __init__(self, settings: Settings, faults: Faults | None = None):
        self.settings = settings
        self.store = Store(settings.seed, settings.volumes(),
                           last_modified_everywhere=settings.last_modified_everywhere)
        self.tokens = Tokens(settings)
        self.limiter = RateLimiter(settings.rate_limit, settings.daily_limit, settings.max_concurrency)
        self.faults = faults or Faults(seed=settings.seed)
        self.stats = Stats()

    def reset(self, seed: int | None = None, scale: float | None = None, counts: dict | None = None,
              last_modified_everywhere: bool | None = None) -> dict:
        """New data (same seed unless given), fresh stats and limit windows, daily counts, concurrency
        high-water marks and refusal counts (requests in flight stay counted). Access tokens stay valid
        and faults stay as they are (a running TDS need not notice). ``counts`` replaces the
        per-entity overrides; ``last_modified_everywhere`` gives price lists, users and branches a
        ``last_modified_time`` too. ValueError/KeyError on a bad value."""
        s = self.settings
        if counts is not None:
            unknown = [k for k in counts if entities.resolve(k) is None]
            if unknown:
                raise KeyError(f"unknown entities {unknown}")
            s.counts = {entities.resolve(k).name: int(v) for k, v in counts.items()}
        if seed is not None:
            s.seed = int(seed)
        if scale is not None:
            s.scale = float(scale)
        if last_modified_everywhere is not None:
            s.last_modified_everywhere = bool(last_modified_everywhere)
        self.store.load(s.seed, s.volumes(), last_modified_everywhere=s.last_modified_everywhere)
        self.stats.reset()
        self.limiter.reset()
        self.tokens.forget_refreshes()
        return {"seed": s.seed, "scale": s.scale, "counts": {e.name: self.store.count(e) for e in entities.ENTITIES}}

    # --- changes through the control API (each may fire a webhook) ---
    def create(self, spec: EntitySpec, fields: dict) -> tuple[dict, dict | None]:
        obj = self.store.create(spec, fields, now_epoch())
        self.stats.inc("changes", spec.name, "created")
        return obj, self.auto_fire(spec, obj, "created")

    def modify(self, spec: EntitySpec, oid: str, fields: dict) -> tuple[dict, dict | None]:
        obj = self.store.modify(spec, oid, fields, now_epoch())
        self.stats.inc("changes", spec.name, "updated")
        return obj, self.auto_fire(spec, obj, "updated")

    def delete(self, spec: EntitySpec, oid: str) -> tuple[dict, dict | None]:
        obj = self.store.delete(spec, oid)
        self.stats.inc("changes", spec.name, "deleted")
        return obj, self.auto_fire(spec, obj, "deleted")

    def auto_fire(self, spec: EntitySpec, obj: dict, event: str) -> dict | None:
        target = self.faults.snapshot().fire_webhooks
        if not target:
            return None
        return self.fire(target["url"], target.get("token"), spec, obj, event, target.get("format", "default"),
                         target.get("secret"), float(target.get("timeout", 10)))

    def fire(self, url: str, token: str | None, spec: EntitySpec, obj: dict, event: str, fmt: str,
             secret: str | None = None, timeout: float = 10.0) -> dict:
        result = webhooks.fire(url, token, spec, obj, event, fmt, secret, timeout)
        status = result.get("status")
        self.stats.inc("webhooks", "fired")
        self.stats.inc("webhooks", "by_status", str(status) if status is not None else "unreachable")
        return result
