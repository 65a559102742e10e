"""The Zoho simulator as the tests drive it: its control API, the constants of the seed tests use, and
how TDS is pointed at it. The ``sim_base`` and ``sim`` fixtures (conftest) start it once per module."""

from __future__ import annotations

from support import web
from support.env import ADMIN_TOKEN
from tds_daemon import entities

ORG = "600000001"
SEED = 7
SCALE = 0.25  # product 328 (2 pages), customer 626 (4), invoice 750 (4), ... every entity present
CREDENTIALS = {"grant_type": "refresh_token", "client_id": "sim-client", "client_secret": "sim-secret",
               "refresh_token": "sim-refresh"}
NO_FAULTS = {"error_rate": 0, "latency_ms": 0, "down": "", "token_ttl_s": 3600, "fire_webhooks": None,
             "rate_limit": 0, "daily_limit": 0, "max_concurrency": 0, "refresh_limit": 0,
             "image_fault": None, "image_oversize_bytes": 5 * 1024 * 1024}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
APP_PREFIX = {"books": "/books/v3", "inventory": "/inventory/v1"}
ALL = [e.name for e in entities.ENTITIES]


# --- the simulator ---

class Sim:
    """The simulator's control API (the truth) and, for comparisons, its Zoho API with a token of our own."""

    def __init__(self, base: str):
        self.base = base
        self.http = web.Client(base_url=base, timeout=30)

    def control(self, method: str, path: str, body=None) -> dict:
        r = self.http.request(method, f"/_sim/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    def reset(self, scale: float = SCALE, counts: dict | None = None) -> dict:
        return self.control("POST", "reset", {"seed": SEED, "scale": scale, "counts": counts or {},
                                              "last_modified_everywhere": False})["counts"]

    def faults(self, **faults) -> dict:
        return self.control("POST", "faults", faults)

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def truth(self, entity: str) -> dict:
        return self.control("GET", f"objects/{entity}")

    def object(self, entity: str, oid: str) -> dict:
        return self.control("GET", f"objects/{entity}/{oid}")

    def patch(self, entity: str, oid: str, fields: dict) -> dict:
        return self.control("PATCH", f"objects/{entity}/{oid}", fields)["object"]

    def image(self, item_id: str) -> tuple[bytes, str, str] | None:
        """The item's current image as Zoho would serve it: ``(bytes, content type, sha256 hex)``, or
        None when it has none (read through the control API: not counted as a Zoho call)."""
        r = self.http.get(f"/_sim/objects/product/{item_id}/image")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return r.content, r.headers["Content-Type"], r.headers["X-Image-SHA256"]

    def new_image(self, item_id: str, fmt: str = "png") -> dict:
        """Give the item a new image (new id, new bytes; a change, webhook if set) → the item."""
        return self.control("PUT", f"objects/product/{item_id}/image", {"format": fmt})["object"]

    def remove_image(self, item_id: str) -> dict:
        """The item loses its image (its four image fields become empty strings) → the item."""
        return self.control("DELETE", f"objects/product/{item_id}/image")["object"]

    def list_rows(self, spec: entities.EntitySpec) -> list[dict]:
        """Every list row Zoho serves for ``spec`` (what a full pull sees)."""
        token = self.http.post("/oauth/v2/token", data=CREDENTIALS).json()["access_token"]
        rows, page = [], 1
        while True:
            r = self.http.get(APP_PREFIX[spec.app] + spec.list_path,
                              headers={"Authorization": f"Zoho-oauthtoken {token}"},
                              params={"organization_id": ORG, "page": page, "per_page": 200, **dict(spec.list_params)})
            assert r.status_code == 200, r.text
            rows += r.json()[spec.list_key]
            if not r.json()["page_context"]["has_more_page"]:
                return rows
            page += 1


def zoho_env(sim_base: str) -> dict[str, str]:
    return {"TDS_ZOHO_ACCOUNTS_URL": sim_base, "TDS_ZOHO_BOOKS_URL": f"{sim_base}/books/v3",
            "TDS_ZOHO_INVENTORY_URL": f"{sim_base}/inventory/v1", "TDS_ZOHO_CLIENT_ID": "sim-client",
            "TDS_ZOHO_CLIENT_SECRET": "sim-secret", "TDS_ZOHO_REFRESH_TOKEN": "sim-refresh",
            "TDS_ZOHO_ORGANIZATION_ID": ORG}
