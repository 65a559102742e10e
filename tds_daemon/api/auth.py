"""Admin authentication: ``Authorization: Bearer <api.admin_token>`` on the admin paths.

Webhooks have their own token (see ``webhooks.py``); health and /metrics are open and meant to be
bound privately.
"""

from __future__ import annotations

import hmac

from .errors import ApiError

ADMIN_PREFIXES = ("/api/tds/", "/api/zoho/", "/dashboard")
OPEN_PREFIXES = ("/api/tds/webhooks/",)


class AdminAuth:
    def __init__(self, admin_token: str):
        self.token = admin_token.encode()

    def process_request(self, req, resp) -> None:
        path = req.path
        if not path.startswith(ADMIN_PREFIXES) or path.startswith(OPEN_PREFIXES):
            return
        if not self.token:
            raise ApiError(401, "admin_disabled", "this TDS has no api.admin_token configured; set it (or "
                           "TDS_API_ADMIN_TOKEN) and reload")
        scheme, _, given = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "admin_token_missing", "send Authorization: Bearer <api.admin_token>",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), self.token):
            raise ApiError(401, "admin_token_invalid", "the admin token is wrong",
                           headers={"WWW-Authenticate": "Bearer"})
