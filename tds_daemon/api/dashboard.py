"""``/dashboard``: the operator's page, served by TDS itself from files in the package (no CDN).

Without a session ``GET /dashboard`` answers the login form (a password field ``token``); ``POST
/dashboard/login`` with the admin token opens a session (``session.py``) and sends the browser back to
the page. Wrong tokens are limited per client address (``logins.py``); ``POST /dashboard/logout`` ends
the session on the server. The page reads the admin JSON API with that session's cookie and sends its CSRF token with
every POST, so what it shows is exactly what the API answers.
"""

from __future__ import annotations

import hmac
import html
import logging
from importlib import resources

import falcon

from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError
from tds_daemon.api.logins import LoginLimiter, client_address
from tds_daemon.api.session import COOKIE, CSRF_HEADER, Sessions
from tds_daemon.metrics import dashboard_logins

log = logging.getLogger(__name__)
STATIC = resources.files("tds_daemon.api") / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".png": "image/png"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _page(name: str, **values: str) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value))
    return text


def _html(resp, body: str, status=falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.set_headers(HEADERS)
    resp.text = body


class DashboardResource:
    """The page for a session, else the login form."""

    access = Access.OPEN  # the page itself asks for the session

    def __init__(self, sessions: Sessions):
        self.sessions = sessions

    def on_get(self, req, resp) -> None:
        nonce = self.sessions.nonce(req.cookies.get(COOKIE))
        if nonce is None:
            _html(resp, login_page(self.sessions, ""))
            return
        _html(resp, _page("dashboard.html", csrf=self.sessions.csrf(nonce), csrf_header=CSRF_HEADER))


def login_page(sessions: Sessions, message: str) -> str:
    if not sessions.enabled:
        message = "This TDS has no api.admin_token: set it (or TDS_API_ADMIN_TOKEN) and reload TDS to use this page."
    return _page("login.html", message=message)


class LoginResource:
    """The admin token, from the form, opens a session; a wrong one answers the form again (401), and a
    handful of wrong ones in a minute from one address close the form to it for the rest of that minute
    (429). The body is capped as a webhook's is, before it is read."""

    access = Access.OPEN

    def __init__(self, sessions: Sessions, admin_token: str, limiter: LoginLimiter, max_body: int):
        self.sessions, self.token, self.limiter, self.max_body = sessions, admin_token, limiter, max_body

    def on_post(self, req, resp) -> None:
        length = req.content_length
        if length is None:
            raise ApiError(411, "length_required", "send a Content-Length header")
        if length > self.max_body:
            raise ApiError(413, "body_too_large", f"body is {length} bytes; the limit is {self.max_body}")
        address = client_address(req)
        wait = self.limiter.blocked_for(address)
        if wait:
            dashboard_logins.labels("rate_limited").inc()
            log.warning("dashboard login refused: too many wrong tokens from %s; closed for %d s", address, wait)
            _html(resp, login_page(self.sessions, f"Too many wrong tokens: try again in {wait} seconds."),
                  falcon.HTTP_429)
            resp.set_header("Retry-After", str(wait))
            return
        try:
            form = req.get_media(default_when_empty={})
        except falcon.MediaMalformedError:
            form = {}
        given = form.get("token") if isinstance(form, dict) else None
        if not self.sessions.enabled or not isinstance(given, str) or not given:
            dashboard_logins.labels("refused").inc()
            _html(resp, login_page(self.sessions, "Enter the admin token (api.admin_token)."), falcon.HTTP_401)
            return
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.limiter.failed(address)
            dashboard_logins.labels("refused").inc()
            log.warning("dashboard login refused: wrong token from %s", address)
            _html(resp, login_page(self.sessions, "That is not the admin token."), falcon.HTTP_401)
            return
        dashboard_logins.labels("ok").inc()
        log.info("dashboard login from %s", address)
        self.sessions.set_cookie(req, resp, self.sessions.issue(address))
        resp.status = falcon.HTTP_303
        resp.location = "/dashboard"
        resp.set_headers(HEADERS)


class LogoutResource:
    """Ends the browser's session, on the server as well as in the browser (admin: the CSRF token is
    required)."""

    access = Access.ADMIN

    def __init__(self, sessions: Sessions):
        self.sessions = sessions

    def on_post(self, req, resp) -> None:
        if req.context.session is not None:
            self.sessions.end(req.context.session)
        self.sessions.clear_cookie(req, resp)
        resp.media = {"status": "logged_out"}


class StaticResource:
    access = Access.OPEN

    def on_get(self, req, resp, name: str) -> None:
        suffix = name[name.rfind("."):] if "." in name else ""
        if suffix not in TYPES or "/" in name or name.startswith("."):
            raise ApiError(404, "not_found", f"no dashboard file {name[:60]!r}")
        path = STATIC / name
        if not path.is_file():
            raise ApiError(404, "not_found", f"no dashboard file {name[:60]!r}")
        resp.content_type = TYPES[suffix]
        resp.data = path.read_bytes()
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Content-Type-Options", "nosniff")
