"""One TLS context per process for every HTTP client TDS makes (Zoho, subscribers, the simulator's webhooks)."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def context() -> ssl.SSLContext:
    """httpx's own default verification (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR), built once:
    building it reads the whole CA bundle, which a client made without one does anew each time."""
    return httpx.create_ssl_context()
