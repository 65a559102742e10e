"""Who may call what: every resource declares its ``access``, and ``AccessControl`` checks it against the
resource Falcon matched, so the spelling of a path (``//api``, a trailing slash, an encoded slash) never
decides. A resource without a declaration refuses everyone.

- ``OPEN``: anyone (health, ``/metrics``, ``/openapi.json``, the login page and its files); bind privately.
- ``WEBHOOK``: Zoho's deliveries, with ``api.webhook_token`` in a header or ``?token=``.
- ``ADMIN``: ``Authorization: Bearer <api.admin_token>``, or a dashboard session (``session.py``) that,
  on anything but GET/HEAD/OPTIONS, also sends its CSRF token.
"""

from __future__ import annotations

import enum
import hmac

from tds_daemon.api.errors import ApiError
from tds_daemon.api.session import COOKIE, CSRF_HEADER, Sessions

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class Access(enum.Enum):
    OPEN = "open"
    WEBHOOK = "webhook"
    ADMIN = "admin"


def access_of(resource) -> Access | None:
    """The access a resource declares (its ``access`` attribute), or None when it declares none."""
    access = getattr(resource, "access", None)
    return access if isinstance(access, Access) else None


class AccessControl:
    """The one middleware step that lets a request reach a resource."""

    def __init__(self, admin_token: str, webhook_token: str, sessions: Sessions):
        self.admin_token = admin_token.encode()
        self.webhook_token = webhook_token.encode()
        self.sessions = sessions

    def process_resource(self, req, resp, resource, params) -> None:
        req.context.session = None
        if resource is None:  # no route matched: Falcon answers 404
            return
        access = access_of(resource)
        if access is Access.OPEN:
            return
        if req.method != "OPTIONS" and not hasattr(resource, f"on_{req.method.lower()}"):
            return  # a method the resource does not answer: Falcon's 405, whoever asks
        if access is Access.ADMIN:
            self._admin(req)
        elif access is Access.WEBHOOK:
            try:
                self._webhook(req)
            except ApiError as e:
                refused = getattr(resource, "refused", None)
                if refused is not None:
                    refused(req, params, e)
                raise
        else:
            raise ApiError(403, "route_undeclared", "this route declares no access, so nobody may call it")

    def _webhook(self, req) -> None:
        if not self.webhook_token:
            raise ApiError(401, "webhooks_disabled", "this TDS has no api.webhook_token configured; "
                           "set it (or TDS_API_WEBHOOK_TOKEN) and reload")
        given = (req.get_header("X-TDS-Webhook-Token") or req.get_header("X-Webhook-Key")
                 or req.get_param("token"))
        if not given:
            raise ApiError(401, "token_missing", "send the webhook token in the X-TDS-Webhook-Token header, "
                           "the X-Webhook-Key header or the token query parameter")
        if not hmac.compare_digest(given.encode(), self.webhook_token):
            raise ApiError(401, "token_invalid", "the webhook token is wrong")

    def _admin(self, req) -> None:
        if not self.admin_token:
            raise ApiError(401, "admin_disabled", "this TDS has no api.admin_token configured; set it (or "
                           "TDS_API_ADMIN_TOKEN) and reload")
        header = req.get_header("Authorization")
        if header is None:
            cookie = req.cookies.get(COOKIE)
            nonce = self.sessions.nonce(cookie) if cookie else None
            if nonce is not None:
                if req.method not in SAFE_METHODS and not self.sessions.csrf_ok(nonce, req.get_header(CSRF_HEADER)):
                    raise ApiError(403, "csrf_token_invalid", f"a dashboard session must send its {CSRF_HEADER} "
                                   "header; reload the page")
                req.context.session = nonce
                return
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "admin_token_missing", "send Authorization: Bearer <api.admin_token>",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), self.admin_token):
            raise ApiError(401, "admin_token_invalid", "the admin token is wrong",
                           headers={"WWW-Authenticate": "Bearer"})
