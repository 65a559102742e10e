"""Zoho's error answers, as data: HTTP status, Zoho ``code``, ``message``.

Each comes from Zoho's Books "Errors" page, a third-party client that saw it live, third-party
write-ups, or is *unconfirmed* (a placeholder no client should rely on). Which is which, answer by
answer: docs/ARCHITECTURE.md, "The Zoho simulator"; what TDS relies on: docs/ZOHO.md.
"""

from __future__ import annotations


class ZohoError(Exception):
    """An answer in Zoho's error shape: ``{"code": <non-zero>, "message": ...}``."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    @property
    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


def no_auth() -> ZohoError:
    return ZohoError(401, 14, "The request could not be authenticated as the authentication value you entered is "
                              "invalid. Enter a valid authentication value and try again.")


def bad_token() -> ZohoError:
    return ZohoError(401, 57, "You are not authorized to perform this operation")


def missing_org() -> ZohoError:
    return ZohoError(400, 6042, "This user belongs to multiple organizations, hence the parameter "
                                "CompanyID/CompanyName is required for associating this user to a specific "
                                "organization.")


def foreign_org(org_id: str) -> ZohoError:
    return ZohoError(400, 6041, f"This user is not associated with the CompanyID/CompanyName:{org_id}.")


def invalid_value(param: str) -> ZohoError:
    return ZohoError(400, 2, f"Invalid value passed for {param}")


def not_found(label: str) -> ZohoError:
    return ZohoError(404, 1002, f"{label} does not exist.")


def bad_url() -> ZohoError:
    return ZohoError(404, 5, "Invalid URL Passed")


def bad_method() -> ZohoError:
    return ZohoError(405, 37, "The HTTP method is not allowed for the requested resource")


def per_minute(retry_after: int) -> ZohoError:
    return ZohoError(429, 44, "For security reasons your organization has been blocked as it have exceeded the "
                              "maximum number of requests per minute that can originate from an organization.",
                     {"Retry-After": str(retry_after)})


def per_day(limit: int, retry_after: int) -> ZohoError:
    return ZohoError(429, 45, f"The API call for this organization has exceeded the maximum call rate limit of "
                              f"{limit}.", {"Retry-After": str(retry_after)})


def concurrency() -> ZohoError:
    return ZohoError(429, 1070, "You have made too many concurrent requests. Please try again later.",
                     {"Retry-After": "1"})


def internal() -> ZohoError:
    return ZohoError(500, 1000, "Internal error")


# A 503 from Zoho's front door is not JSON: clients must cope with an HTML body.
UNAVAILABLE_HTML = ("<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
                    "<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>")

# OAuth (accounts server) answers. Zoho answers bad credentials with HTTP 200 and an "error" key
# (observed by several third-party clients' tests; not in Zoho's docs, so *unconfirmed*); too many
# refreshes with HTTP 400 and the body below (observed identically in several clients).
OAUTH_INVALID_CLIENT = {"error": "invalid_client"}
OAUTH_INVALID_SECRET = {"error": "invalid_client_secret"}
OAUTH_INVALID_CODE = {"error": "invalid_code"}
OAUTH_BAD_GRANT = {"error": "unsupported_grant_type"}
OAUTH_TOO_MANY = {"error_description": "You have made too many requests continuously. Please try again after some "
                                       "time.", "error": "Access Denied", "status": "failure"}
