"""The dashboard's login session: a signed, expiring cookie, and the CSRF token bound to it.

The cookie holds ``<expires>.<nonce>.<signature>``, signed with a key derived from ``api.admin_token``:
changing the token (and reloading) ends every session. The CSRF token is a second signature over the
same nonce: pages served to the session carry it, and the cookie is SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

COOKIE = "tds_session"
CSRF_HEADER = "X-CSRF-Token"


class Sessions:
    def __init__(self, admin_token: str, lifetime_s: int):
        self.enabled = bool(admin_token)
        self.key = hmac.new(admin_token.encode(), b"tds-dashboard-session-v1", hashlib.sha256).digest()
        self.lifetime_s = lifetime_s

    def _sign(self, what: str) -> str:
        return hmac.new(self.key, what.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        """A new session cookie value, valid for ``lifetime_s``."""
        expires = int((now or time.time()) + self.lifetime_s)
        nonce = secrets.token_urlsafe(18)
        body = f"{expires}.{nonce}"
        return f"{body}.{self._sign(body)}"

    def nonce(self, value: str | None, now: float | None = None) -> str | None:
        """The session's nonce if ``value`` is a cookie this key signed and it has not expired, else None."""
        if not self.enabled or not value or value.count(".") != 2:
            return None
        expires, nonce, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{expires}.{nonce}")):
            return None
        try:
            if int(expires) < (now or time.time()):
                return None
        except ValueError:
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the session with this nonce."""
        return self._sign(f"csrf.{nonce}")

    def csrf_ok(self, nonce: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given, self.csrf(nonce))

    def set_cookie(self, req, resp, value: str) -> None:
        resp.set_cookie(COOKIE, value, max_age=self.lifetime_s, path="/", http_only=True,
                        secure=req.forwarded_scheme == "https", same_site="Strict")

    def clear_cookie(self, req, resp) -> None:
        resp.unset_cookie(COOKIE, path="/", same_site="Strict")
