"""The Zoho side: OAuth tokens shared through Redis, one rate limiter for every process, the client."""

from tds_daemon.pull.zoho.client import ZohoClient
from tds_daemon.pull.zoho.errors import ZohoAuthError, ZohoError, ZohoUnavailable

__all__ = ["ZohoAuthError", "ZohoClient", "ZohoError", "ZohoUnavailable"]
