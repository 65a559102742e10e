"""Zoho's error answers, as data: HTTP status, Zoho ``code``, ``message``.

Sources (looked up, not guessed, where marked):

- confirmed, Zoho Books v3 "Errors" page: HTTP 401 = invalid AuthToken, 404, 405, 429 = rate limit
  exceeded, 500 = internal error; ``{"code": 1002, "message": "Invoice does not exist."}`` and
  ``{"code": 1000, "message": "Internal error"}``.
- confirmed live by a third-party Zoho Invoice client (same platform as Books): no Authorization
  header → 401 code 14 ("The request could not be authenticated ..."); a dead token → 401
  ``{"code": 57, "message": "You are not authorized to perform this operation"}``.
- two independent third-party write-ups of the Books/Inventory introduction page: per-minute
  limit → code 44, daily limit → code 45, concurrency → code 1070 (HTTP 429), as the simulator
  answers them (the concurrency message is its own; *unconfirmed*: a client must not tell the
  refusals apart by code, TDS's does not). Whether Zoho sends
  ``Retry-After`` is *unconfirmed*; the simulator always does.
- Zoho's Deluge docs: a foreign organization → ``{"code": 6041, "message": "This user is not
  associated with the CompanyID/CompanyName:<id>."}``. *Unconfirmed*: its HTTP status (400 here),
  the code for a missing ``organization_id`` (the message is the one reported by Airbyte users,
  the code 6042 is a placeholder) and code 2 for a malformed parameter (widely reported message
  "Invalid value passed for organization_id").
- *Unconfirmed*: 404 with code 1002 for every entity's unknown id (documented for invoices only),
  code 5 "Invalid URL Passed" for an unknown path, code 37 for a wrong method.
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
