"""Zoho errors, classified: transient ones are worth retrying later, the others need a person."""

from __future__ import annotations


class ZohoError(Exception):
    """Zoho answered with an error: its ``code`` and ``message`` are kept as Zoho sent them."""

    transient = False

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None, app: str = ""):
        super().__init__(message)
        self.code, self.status, self.app, self.message = code, status, app, message

    def __str__(self) -> str:
        parts = [f"Zoho {self.app}".strip()]
        if self.status:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        return f"{' '.join(parts)}: {self.message}"


class ZohoInvalidId(ZohoError):
    """An id that is not a Zoho id was to go into a URL path: nothing was sent (a permanent error)."""


class ZohoUnavailable(ZohoError):
    """Timeouts, connection failures, 5xx, and 429s we could not wait out: try again later."""

    transient = True


class ZohoStopped(ZohoError):
    """The process is stopping: a call still waiting for its turn was not sent."""

    transient = True


class ZohoAuthError(ZohoError):
    """OAuth credentials refused, or a fresh token still refused: an operator must fix the config."""


class ZohoRateLimited(ZohoUnavailable):
    """Our own pace: never counted against a circuit breaker."""

    def __init__(self, message: str, *, retry_after: float, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ZohoBreakerOpen(ZohoUnavailable):
    """A circuit breaker refused the call, so no request was sent: never counted against a breaker itself.

    ``retry_at`` is when the breaker lets a trial call through (None while its trials are out).
    """

    def __init__(self, message: str, *, breaker: str, retry_at=None, **kw):
        super().__init__(message, **kw)
        self.breaker, self.retry_at = breaker, retry_at


class ZohoBudgetSpent(ZohoError):
    """The day's budget of Zoho calls (``zoho.daily_budget``, or Zoho's own remaining count) is spent for
    this kind of work: no request was sent. Not Zoho failing: never counted against a breaker."""

    transient = True


class ZohoQuotaSpent(ZohoBudgetSpent):
    """Zoho refused a call because the organization's daily quota is spent (HTTP 429, code 45): no background
    call is sent until ``resets_at`` (Zoho's reset, UTC), by any process. Not Zoho failing: never counted
    against a breaker, never retried before the reset."""

    def __init__(self, message: str, *, resets_at, **kw):
        super().__init__(message, **kw)
        self.resets_at = resets_at
