"""The Zoho side: OAuth tokens shared through Redis, one rate limiter for every process, the client."""

from .client import ZohoClient
from .errors import ZohoAuthError, ZohoError, ZohoUnavailable

__all__ = ["ZohoAuthError", "ZohoClient", "ZohoError", "ZohoUnavailable"]
