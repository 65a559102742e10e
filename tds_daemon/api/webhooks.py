"""``POST /api/tds/webhooks/{entity}``: check, store durably (group commit), then dispatch. The webhook token
is checked before this resource is reached (``auth.AccessControl``), which reports refusals to ``refused``."""

from __future__ import annotations

import hashlib
import hmac
import logging

import falcon
from sqlalchemy import exc

from tds_daemon import entities
from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, database_unavailable
from tds_daemon.api.refusals import RefusalLog
from tds_daemon.intake import webhook
from tds_daemon.intake.groupcommit import GroupCommit
from tds_daemon.intake.pressure import Announcer, Pressure
from tds_daemon.metrics import webhooks_received
from tds_daemon.oneline import first_line
from tds_daemon.store.db import is_transient

log = logging.getLogger(__name__)


class WebhookResource:
    access = Access.WEBHOOK

    def __init__(self, config, engine, dispatcher):
        self.secret = config.api.webhook_secret.encode()
        self.max_body = config.api.max_body_bytes
        self.refusals = RefusalLog()
        self.pressure = Pressure(config.api.threads)
        announcer = Announcer(self.pressure, dispatcher.broker.client, config.redis.namespace)
        self.commits = GroupCommit(engine, dispatcher, send_interval_s=config.api.send_interval_ms / 1000,
                                   announcer=announcer)

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity: str) -> None:
        spec = entities.resolve(entity)
        self.pressure.enter()
        try:
            stored, delivery = self._accept(req, spec, entity)
        except ApiError as e:
            self.refused(req, {"entity": entity}, e)
            raise
        finally:
            self.pressure.leave()
        outcome = "duplicate" if stored.duplicate else "accepted"  # counted by the group's writer
        # DEBUG, not INFO: a line per webhook costs more than storing it, under gunicorn's threads (a
        # write to stderr gives up the GIL), and tds_webhooks_received_total counts them.
        log.debug("webhook %s: entity=%s zoho_id=%s event=%s event_id=%s item=%s", outcome, spec.name,
                 delivery.zoho_id, delivery.event_type, stored.event_id, stored.item_id)
        resp.status = falcon.HTTP_200 if stored.duplicate else falcon.HTTP_202
        resp.media = {"status": outcome, "event_id": stored.event_id}

    def refused(self, req, params: dict, error: ApiError) -> None:
        """Counts and records a delivery refused, here or by the access check before it."""
        entity = params.get("entity", "")
        spec = entities.resolve(entity)
        webhooks_received.labels(spec.name if spec else "unknown", error.code).inc()
        self.refusals.note(error.status_code, error.code, spec.name if spec else entity, req.remote_addr,
                           req.get_header("X-Forwarded-For"), error.detail)

    def _accept(self, req, spec, entity):
        length = req.content_length
        if length is None:
            raise ApiError(411, "length_required", "send a Content-Length header")
        if length > self.max_body:
            raise ApiError(413, "body_too_large", f"body is {length} bytes; the limit is {self.max_body}")
        if spec is None:
            raise ApiError(404, "unknown_entity", f"no entity type {entity[:60]!r}; known: "
                           + ", ".join(e.name for e in entities.ENTITIES))
        raw = req.bounded_stream.read(length) if length else b""
        if self.secret:
            self._verify_signature(req, raw)
        try:
            body = webhook.parse_body(raw, req.content_type)
            delivery = webhook.read(spec, body, req.get_param("event"), req.get_header("X-TDS-Event"))
            payload = webhook.dump_body(body)
        except webhook.Rejected as e:
            raise ApiError(e.status, e.code, e.message) from None
        try:
            stored = self.commits.store(delivery, payload)
        except exc.DataError as e:
            raise ApiError(400, "unstorable_payload", "PostgreSQL cannot store this body: "
                           + first_line(e.orig)) from None
        except exc.SQLAlchemyError as e:
            if not is_transient(e):
                raise
            raise database_unavailable("TDS cannot reach its database; nothing was stored, send it again later",
                                       detail=type(getattr(e, "orig", None) or e).__name__) from None
        return stored, delivery

    def _verify_signature(self, req: falcon.Request, raw: bytes) -> None:
        given = (req.get_header("X-Zoho-Webhook-Signature") or "").strip().lower()
        if not given:
            raise ApiError(401, "signature_missing", "X-Zoho-Webhook-Signature is required: the hex "
                           "HMAC-SHA256 of the body under the shared secret")
        expected = hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "signature_invalid", "X-Zoho-Webhook-Signature does not match the body")
