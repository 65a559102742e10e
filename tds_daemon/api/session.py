"""The dashboard's login session: a signed, expiring cookie, kept on the server too, and the CSRF token
bound to it.

The cookie holds ``<expires>.<nonce>.<signature>``, signed with a key derived from ``api.admin_token``:
changing the token (and reloading) ends every session. A session is also a row of
``tds_dashboard_sessions`` (the nonce's SHA-256): logging out ends it there, so a cookie kept from before
opens nothing. The CSRF token is a second signature over the same nonce: pages served to the session
carry it, and the cookie is SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy import text

COOKIE = "tds_session"
CSRF_HEADER = "X-CSRF-Token"


_OPEN = text("INSERT INTO tds_dashboard_sessions (id, expires_at, client) "
             "VALUES (:id, to_timestamp(:expires), :client)")
_FORGET = text("DELETE FROM tds_dashboard_sessions WHERE expires_at < now() - interval '1 day'")
_LIVE = text("SELECT 1 FROM tds_dashboard_sessions WHERE id = :id AND ended_at IS NULL")
_END = text("UPDATE tds_dashboard_sessions SET ended_at = now() WHERE id = :id AND ended_at IS NULL")


def _row_id(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


class Sessions:
    def __init__(self, admin_token: str, lifetime_s: int, engine):
        self.enabled = bool(admin_token)
        self.key = hmac.new(admin_token.encode(), b"tds-dashboard-session-v1", hashlib.sha256).digest()
        self.lifetime_s = lifetime_s
        self.engine = engine

    def _sign(self, what: str) -> str:
        return hmac.new(self.key, what.encode(), hashlib.sha256).hexdigest()

    def issue(self, client: str | None = None, now: float | None = None) -> str:
        """A new session cookie value, valid for ``lifetime_s`` or until ``end``; recorded on the server."""
        expires = int((now or time.time()) + self.lifetime_s)
        nonce = secrets.token_urlsafe(18)
        with self.engine.begin() as conn:
            conn.execute(_FORGET)
            conn.execute(_OPEN, {"id": _row_id(nonce), "expires": expires, "client": client})
        body = f"{expires}.{nonce}"
        return f"{body}.{self._sign(body)}"

    def end(self, nonce: str) -> None:
        """Ends the session on the server: its cookie opens nothing from now on."""
        with self.engine.begin() as conn:
            conn.execute(_END, {"id": _row_id(nonce)})

    def nonce(self, value: str | None, now: float | None = None) -> str | None:
        """The session's nonce if ``value`` is a cookie this key signed, not expired and not ended, else None."""
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
        with self.engine.connect() as conn:
            live = conn.execute(_LIVE, {"id": _row_id(nonce)}).first()
        return nonce if live else None

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
