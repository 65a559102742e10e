"""Zoho's accounts server, for the one grant TDS uses: ``grant_type=refresh_token``.

``POST /oauth/v2/token`` with ``grant_type``, ``client_id``, ``client_secret``, ``refresh_token``
(form body or query string, Zoho takes both) answers ``{"access_token": "1000.<hex>.<hex>",
"api_domain": <this simulator>, "token_type": "Bearer", "expires_in": 3600}``.

Refreshing is itself limited: about 10 access tokens per refresh token per 10 minutes (docs/ZOHO.md);
past it Zoho answers HTTP 400 ``{"error": "Access Denied", "error_description": "You have made too
many requests continuously. Please try again after some time.", "status": "failure"}`` (the body
is as observed by several third-party clients; the exact count and window are *unconfirmed*, so
both are settings). Bad credentials are answered with HTTP 200 and an ``error`` key (see
``errors.py``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque

from tds_daemon.simulator import errors
from tds_daemon.simulator.settings import Settings


class Tokens:
    def __init__(self, settings: Settings, clock=time.monotonic):
        self.settings, self.clock = settings, clock
        self.lock = threading.Lock()
        self.issued: dict[str, float] = {}  # access token → expiry (clock)
        self.grants: dict[str, deque[float]] = {}  # refresh token → times access tokens were issued

    def grant(self, form: dict[str, str], api_domain: str, ttl_s: int) -> tuple[int, dict, str]:
        """→ (HTTP status, body, outcome) where outcome is granted | invalid | throttled."""
        s = self.settings
        if form.get("grant_type") != "refresh_token":
            return 200, (errors.OAUTH_INVALID_CODE if form.get("grant_type") == "authorization_code"
                         else errors.OAUTH_BAD_GRANT), "invalid"
        if form.get("client_id") != s.client_id:
            return 200, errors.OAUTH_INVALID_CLIENT, "invalid"
        if form.get("client_secret") != s.client_secret:
            return 200, errors.OAUTH_INVALID_SECRET, "invalid"
        refresh = form.get("refresh_token") or ""
        if refresh != s.refresh_token:
            return 200, errors.OAUTH_INVALID_CODE, "invalid"
        now = self.clock()
        with self.lock:
            recent = self.grants.setdefault(refresh, deque())
            while recent and recent[0] <= now - s.refresh_window_s:
                recent.popleft()
            if s.refresh_limit and len(recent) >= s.refresh_limit:
                return 400, errors.OAUTH_TOO_MANY, "throttled"
            recent.append(now)
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self.issued = {t: exp for t, exp in self.issued.items() if exp > now}  # forget the expired
            self.issued[token] = now + ttl_s
        return 200, {"access_token": token, "api_domain": api_domain, "token_type": "Bearer",
                     "expires_in": ttl_s}, "granted"

    def valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.issued.get(token)
        return expiry is not None and expiry > self.clock()

    def expire_all(self) -> int:
        """Every access token issued so far stops working now (the next call answers 401)."""
        with self.lock:
            n = len(self.issued)
            self.issued.clear()
        return n

    def forget_refreshes(self) -> None:
        with self.lock:
            self.grants.clear()

    def active(self) -> int:
        now = self.clock()
        with self.lock:
            return sum(1 for exp in self.issued.values() if exp > now)
