"""OAuth access tokens, cached in Redis and shared by every process, refreshed by one at a time.

Zoho rate-limits refreshing itself (about ten access tokens per refresh token per ten minutes):
a connector that refreshes per process or per job locks itself out. So there is one cached token,
refreshed ahead of expiry by whichever process first takes the lock, and the others wait for it.

Keys (``<ns>`` is ``redis.namespace``):

- ``<ns>:zoho:token`` — JSON ``{"access_token", "expires_at", "refresh_at" (epoch s), "api_domain"}``,
  expiring with the token.
- ``<ns>:zoho:token:lock`` — held (SET NX PX) by the process refreshing; a random value so that
  only the holder releases it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import httpx
import redis

from tds_daemon.metrics import zoho_token_refreshes
from tds_daemon.pull.zoho.errors import ZohoAuthError, ZohoUnavailable

log = logging.getLogger(__name__)

REFRESH_AHEAD_S = 300  # refresh this long before expiry, so no request carries a dying token
LOCK_MS = 30000
WAIT_FOR_OTHER_S = 20

# KEYS[1] lock; ARGV[1] holder's value. Deletes the lock only if this process holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] token; ARGV[1] the token a 401 refused. Deletes the cache only if it still holds that one,
# so a token another process just refreshed is not thrown away.
DISCARD = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['access_token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TokenSource:
    def __init__(self, config, client: redis.Redis, http: httpx.Client):
        z = config.zoho
        self.url = config.zoho_accounts_url.rstrip("/") + "/oauth/v2/token"
        self.form = {"grant_type": "refresh_token", "client_id": z.client_id, "client_secret": z.client_secret,
                     "refresh_token": z.refresh_token}
        self.redis = client
        self.http = http
        ns = config.redis.namespace
        self.key, self.lock_key = f"{ns}:zoho:token", f"{ns}:zoho:token:lock"
        self._release = client.register_script(RELEASE)
        self._discard = client.register_script(DISCARD)

    def _cached(self) -> dict | None:
        raw = self.redis.get(self.key)
        return json.loads(raw) if raw else None

    def token(self) -> str:
        cached = self._cached()
        if cached and time.time() < cached["refresh_at"]:
            return cached["access_token"]
        return self._refresh_or_wait(cached)

    def discard(self, access_token: str) -> None:
        """A request with this token got 401: the next ``token()`` refreshes (once, for everyone)."""
        self._discard(keys=[self.key], args=[access_token])

    def _refresh_or_wait(self, cached: dict | None) -> str:
        deadline = time.monotonic() + WAIT_FOR_OTHER_S
        holder = uuid.uuid4().hex
        while True:
            if self.redis.set(self.lock_key, holder, nx=True, px=LOCK_MS):
                try:
                    fresh = self._cached()  # someone may have refreshed while we waited for the lock
                    if fresh and time.time() < fresh["refresh_at"]:
                        return fresh["access_token"]
                    return self._refresh()
                finally:
                    self._release(keys=[self.lock_key], args=[holder])
            # Another process is refreshing: a still-valid token serves meanwhile.
            if cached and cached["expires_at"] - time.time() > 10:
                return cached["access_token"]
            fresh = self._cached()
            if fresh and time.time() < fresh["refresh_at"]:
                return fresh["access_token"]
            if time.monotonic() > deadline:
                raise ZohoUnavailable("timed out waiting for another TDS process to refresh the Zoho token",
                                      app="accounts")
            time.sleep(0.1)

    def _refresh(self) -> str:
        if not all(self.form[k] for k in ("client_id", "client_secret", "refresh_token")):
            raise ZohoAuthError("zoho.client_id, zoho.client_secret and zoho.refresh_token must be set",
                                app="accounts")
        try:
            r = self.http.post(self.url, data=self.form)
        except httpx.HTTPError as e:
            zoho_token_refreshes.labels("unavailable").inc()
            raise ZohoUnavailable(f"token refresh failed: {type(e).__name__}", app="accounts") from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 500 or (r.status_code != 200 and "too many requests" in
                                    str(body.get("error_description", "")).lower()):
            zoho_token_refreshes.labels("unavailable").inc()
            raise ZohoUnavailable(f"token refresh refused for now: {body.get('error_description') or r.status_code}",
                                  status=r.status_code, app="accounts")
        if "access_token" not in body:
            zoho_token_refreshes.labels("refused").inc()
            # Zoho answers bad credentials with HTTP 200 and {"error": "..."}.
            raise ZohoAuthError(f"Zoho refused the OAuth credentials ({body.get('error') or r.status_code}); check "
                                "zoho.client_id, zoho.client_secret, zoho.refresh_token and zoho.region",
                                status=r.status_code, app="accounts")
        expires_in = int(body.get("expires_in", 3600))
        now = time.time()
        cached = {"access_token": body["access_token"], "expires_at": now + expires_in,
                  "refresh_at": now + expires_in - min(REFRESH_AHEAD_S, expires_in / 4),
                  "api_domain": body.get("api_domain")}
        self.redis.set(self.key, json.dumps(cached), px=max(1000, expires_in * 1000))
        zoho_token_refreshes.labels("ok").inc()
        log.info("zoho access token refreshed: expires_in=%ss", expires_in)
        return cached["access_token"]
