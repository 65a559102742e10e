"""Admin authentication on the admin paths: ``Authorization: Bearer <api.admin_token>``, or the
dashboard's session cookie (see ``session.py``) with, on anything but GET/HEAD, its CSRF token.

Webhooks have their own token (see ``webhooks.py``); health, /metrics and /openapi.json are open and
meant to be bound privately. The dashboard's login page and its static files are open: the page
itself asks for the session.
"""

from __future__ import annotations

import hmac

from tds_daemon.api.errors import ApiError
from tds_daemon.api.session import COOKIE, CSRF_HEADER, Sessions

ADMIN_PREFIXES = ("/api/tds/", "/api/zoho/", "/dashboard")
# Zoho's deliveries and the intake summary; the other /webhooks/ paths are the admin's.
ADMIN_WEBHOOK_PATHS = ("/api/tds/webhooks/stats", "/api/tds/webhooks/recent")
OPEN_PATHS = ("/dashboard", "/dashboard/login")
OPEN_PREFIXES = ("/dashboard/static/",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_admin_path(path: str) -> bool:
    if not path.startswith(ADMIN_PREFIXES) or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return False
    return not path.startswith("/api/tds/webhooks/") or path in ADMIN_WEBHOOK_PATHS


class AdminAuth:
    def __init__(self, admin_token: str, sessions: Sessions):
        self.token = admin_token.encode()
        self.sessions = sessions

    def process_request(self, req, resp) -> None:
        req.context.session = self.sessions.nonce(req.cookies.get(COOKIE)) if self.token else None
        if not is_admin_path(req.path):
            return
        if not self.token:
            raise ApiError(401, "admin_disabled", "this TDS has no api.admin_token configured; set it (or "
                           "TDS_API_ADMIN_TOKEN) and reload")
        header = req.get_header("Authorization")
        if header is None and req.context.session is not None:
            if req.method not in SAFE_METHODS and not self.sessions.csrf_ok(req.context.session,
                                                                            req.get_header(CSRF_HEADER)):
                raise ApiError(403, "csrf_token_invalid", f"a dashboard session must send its {CSRF_HEADER} "
                               "header; reload the page")
            return
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "admin_token_missing", "send Authorization: Bearer <api.admin_token>",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), self.token):
            raise ApiError(401, "admin_token_invalid", "the admin token is wrong",
                           headers={"WWW-Authenticate": "Bearer"})
