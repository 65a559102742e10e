"""Zoho's webhooks, posted to TDS: ``POST <TDS>/api/tds/webhooks/<alias>?event=<event>``.

Bodies, as a Zoho workflow webhook can be configured (docs/ZOHO.md, "Webhooks"):

- ``default``: Zoho's default payload, JSON with the object under its key: ``{"item": {...}}``;
- ``data``: a custom JSON body ``{"data": {...}}``;
- ``bare``: a custom JSON body that is the object itself;
- ``form``: ``application/x-www-form-urlencoded`` with the JSON in the field ``JSONString``.

The token goes in the header ``X-TDS-Webhook-Token`` (a custom header, as Zoho's webhook settings
allow). With a ``secret``, ``X-Zoho-Webhook-Signature`` carries the hex HMAC-SHA256 of the body
(the Zoho Billing scheme; whether Books/Inventory sign is *unconfirmed*). ``url`` is a TDS base URL
(``http://127.0.0.1:8080``), whose path gets ``/api/tds/webhooks/<alias>`` (the entity's first
alias: ``products``, ``customers``, ``orders``, ...), or a full webhook URL used as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse

import httpx

from tds_daemon import tls
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator.faults import FORMATS

WEBHOOK_PATH = "/api/tds/webhooks/"
EVENTS = ("created", "updated", "deleted")


def target(url: str, spec: EntitySpec) -> str:
    if WEBHOOK_PATH in url:
        return url
    return url.rstrip("/") + WEBHOOK_PATH + (spec.aliases[0] if spec.aliases else spec.name)


def body(spec: EntitySpec, obj: dict, fmt: str) -> tuple[bytes, str]:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    if fmt == "form":
        form = urllib.parse.urlencode({"JSONString": json.dumps(obj, ensure_ascii=False)})
        return form.encode(), "application/x-www-form-urlencoded"
    payload = {"default": {spec.object_key: obj}, "data": {"data": obj}, "bare": obj}[fmt]
    return json.dumps(payload, ensure_ascii=False).encode(), "application/json"


def fire(url: str, token: str | None, spec: EntitySpec, obj: dict, event: str = "updated", fmt: str = "default",
         secret: str | None = None, timeout: float = 10.0) -> dict:
    """Post one webhook; → {"url", "status", "body"} (status None and "error" when it did not arrive)."""
    if event not in EVENTS:
        raise ValueError(f"event must be one of {EVENTS}")
    content, content_type = body(spec, obj, fmt)
    headers = {"Content-Type": content_type}
    if token:
        headers["X-TDS-Webhook-Token"] = token
    if secret:
        headers["X-Zoho-Webhook-Signature"] = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
    where = target(url, spec)
    try:  # merged, so that a ?token= in a configured URL survives
        full = httpx.URL(where).copy_merge_params({"event": event})
        r = httpx.post(full, content=content, headers=headers, timeout=timeout, verify=tls.context())
    except httpx.HTTPError as e:
        return {"url": where, "status": None, "error": f"{type(e).__name__}: {e}"}
    try:
        answer = r.json()
    except ValueError:
        answer = r.text[:2000]
    return {"url": where, "status": r.status_code, "body": answer}
