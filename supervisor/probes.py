"""How the supervisor tells that a child has come up."""

from __future__ import annotations

import http.client


def api_answers(bind: str, timeout_s: float = 0.5) -> bool:
    """True once ``GET /health/live`` on the API's address answers 200."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        conn.request("GET", "/health/live", headers={"Connection": "close"})
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
