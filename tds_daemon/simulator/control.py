"""The control API under ``/_sim/`` (JSON in, JSON out; no authentication: bind it privately): the truth for
tests (info, stats, objects), a fresh data set (reset), faults and limits, objects created, changed and
deleted as Zoho would see them (optionally announced to TDS as webhooks), and webhooks fired on demand.
Every route and its body: docs/ARCHITECTURE.md, "The Zoho simulator".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import fields

import falcon

from tds_daemon import entities
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator import images
from tds_daemon.simulator.faults import FaultState
from tds_daemon.simulator.limits import zero_app
from tds_daemon.simulator.sim import APPS, Simulator
from tds_daemon.simulator.webhooks import EVENTS

_LIMITS = ("rate_limit", "daily_limit", "max_concurrency", "refresh_limit")
_COUNTS = ("daily_used",)  # not limits: set today's count


def _fail(status: int, code: str, message: str):
    raise falcon.HTTPError(status, title=code, description=message)


def _spec(name: str) -> EntitySpec:
    spec = entities.resolve(name)
    if spec is None:
        _fail(404, "Unknown Entity", entities.unknown(name))
    return spec


def _body(req: falcon.Request) -> dict:
    try:
        body = req.get_media(default_when_empty={})
    except falcon.MediaMalformedError:
        _fail(400, "Bad Json", "the body is not valid JSON")
    if not isinstance(body, dict):
        _fail(400, "Bad Json", "the body must be a JSON object")
    return body


def _stored(sim: Simulator, spec: EntitySpec, object_id: str) -> dict:
    """The simulator's current ``object_id`` of ``spec``; a 404 when there is none."""
    obj = sim.store.get(spec, object_id)
    if obj is None:
        _fail(404, "Not Found", f"no {spec.name} {object_id}")
    return obj


def _changed(change: Callable[..., tuple[dict, dict]], spec: EntitySpec, object_id: str, *args) -> dict:
    """``{"object", "webhook"}`` of ``change(spec, object_id, *args)`` (the simulator's modify or delete);
    a 404 when there is no such object."""
    try:
        obj, hook = change(spec, object_id, *args)
    except KeyError:
        _fail(404, "Not Found", f"no {spec.name} {object_id}")
    return {"object": obj, "webhook": hook}


class Info:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def on_get(self, req, resp):
        s = self.sim.settings
        resp.media = {
            "accounts_url": req.prefix, "token_url": req.prefix + "/oauth/v2/token",
            **{f"{app}_url": req.prefix + prefix for app, prefix in APPS.items()},
            "credentials": {"client_id": s.client_id, "client_secret": s.client_secret,
                            "refresh_token": s.refresh_token, "organization_id": s.organization_id},
            "seed": s.seed, "scale": s.scale, "rate_limit": self.sim.limiter.per_minute,
            "counts": {e.name: self.sim.store.count(e) for e in entities.ENTITIES},
        }


class Reset:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def on_post(self, req, resp):
        body = _body(req)
        try:
            resp.media = self.sim.reset(body.get("seed"), body.get("scale"), body.get("counts"),
                                        body.get("last_modified_everywhere"))
        except (KeyError, TypeError, ValueError) as e:
            _fail(400, "Bad Reset", str(e))


class StatsResource:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def on_get(self, req, resp):
        stats = self.sim.stats.snapshot()
        limits, org = self.sim.limiter.snapshot()
        apps = stats.setdefault("apps", {})
        for app in APPS:
            node = apps.setdefault(app, {})
            node.setdefault("requests", 0)
            node.update(limits.get(app, zero_app()))
        limiter = self.sim.limiter
        stats["rate_limit"] = limiter.per_minute
        stats["daily_limit"] = limiter.per_day
        stats["daily_used"] = limiter.used_today(self.sim.settings.organization_id)
        stats["max_concurrency"] = limiter.max_concurrency
        stats.update(org)  # in_flight, max_concurrent, concurrency_limited: the organization's, all apps
        stats["active_tokens"] = self.sim.tokens.active()
        resp.media = stats


class FaultsResource:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def _view(self) -> dict:
        s, limiter = self.sim.settings, self.sim.limiter
        return {**vars(self.sim.faults.snapshot()), "rate_limit": limiter.per_minute,
                "daily_limit": limiter.per_day, "max_concurrency": limiter.max_concurrency,
                "refresh_limit": s.refresh_limit, "daily_used": limiter.used_today(s.organization_id)}

    def on_get(self, req, resp):
        resp.media = self._view()

    def on_post(self, req, resp):
        body = dict(_body(req))
        known = {f.name for f in fields(FaultState)} | set(_LIMITS) | set(_COUNTS) | {"expire_tokens"}
        if set(body) - known:
            _fail(400, "Bad Faults", f"unknown fault(s) {sorted(set(body) - known)}; known: {sorted(known)}")
        expire = bool(body.pop("expire_tokens", False))
        limits = {k: body.pop(k) for k in (*_LIMITS, *_COUNTS) if k in body}
        try:
            limits = {k: _whole(k, v) for k, v in limits.items()}
            if any(v < 0 for v in limits.values()):
                raise ValueError(f"{', '.join(limits)} must be zero (off) or more")
            self.sim.faults.update(body)
        except (TypeError, ValueError) as e:
            _fail(400, "Bad Faults", str(e))
        self.sim.limiter.configure(limits.get("rate_limit"), limits.get("daily_limit"), limits.get("max_concurrency"))
        if "daily_used" in limits:
            self.sim.limiter.set_used(self.sim.settings.organization_id, limits["daily_used"])
        if "refresh_limit" in limits:
            self.sim.settings.refresh_limit = limits["refresh_limit"]
        view = self._view()
        if expire:
            view["expired_tokens"] = self.sim.tokens.expire_all()
        resp.media = view


def _whole(name: str, value) -> int:
    """A whole number: ``3`` or ``"3"``; not ``true``, not ``2.5``."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name} must be a whole number")
    return int(value)


class Objects:
    """``/_sim/objects/{entity}`` and ``/_sim/objects/{entity}/{object_id}``."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def on_get(self, req, resp, entity):
        resp.media = self.sim.store.truth(_spec(entity))

    def on_post(self, req, resp, entity):
        spec = _spec(entity)
        try:
            obj, hook = self.sim.create(spec, _body(req))
        except ValueError as e:
            _fail(409, "Exists", str(e))
        resp.status = 201
        resp.media = {"object": obj, "webhook": hook}

    def on_get_one(self, req, resp, entity, object_id):
        resp.media = _stored(self.sim, _spec(entity), object_id)

    def on_patch_one(self, req, resp, entity, object_id):
        resp.media = _changed(self.sim.modify, _spec(entity), object_id, _body(req))

    def on_delete_one(self, req, resp, entity, object_id):
        resp.media = _changed(self.sim.delete, _spec(entity), object_id)


class ItemImageControl:
    """``/_sim/objects/product/{id}/image``: read, replace or remove an item's image (see the table)."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def _item(self, entity: str, object_id: str) -> tuple[EntitySpec, dict]:
        spec = _spec(entity)
        if spec.name != "product":
            _fail(404, "Not Found", f"only items (product) have images, not {spec.name}")
        return spec, _stored(self.sim, spec, object_id)

    def _describe(self, obj: dict) -> dict:
        data, content_type = images.of_item(self.sim.store.seed, obj)
        return {**{k: obj[k] for k in images.FIELDS}, "content_type": content_type, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}

    def on_get(self, req, resp, entity, object_id):
        _, obj = self._item(entity, object_id)
        image = images.of_item(self.sim.store.seed, obj)
        if image is None:
            _fail(404, "Not Found", f"item {object_id} has no image")
        resp.data, resp.content_type = image
        resp.set_header("X-Image-SHA256", hashlib.sha256(image[0]).hexdigest())
        resp.set_header("X-Image-Document-Id", obj.get("image_document_id") or obj.get("image_id"))

    def on_put(self, req, resp, entity, object_id):
        spec, obj = self._item(entity, object_id)
        fmt = str(_body(req).get("format") or "png").lower()
        if fmt not in images.FORMATS:
            _fail(400, "Bad Format", f"format must be one of {sorted(images.FORMATS)}")
        store = self.sim.store
        with store.lock:
            fields_ = images.new_image(store.factory, obj, images.FORMATS[fmt])
        changed = _changed(self.sim.modify, spec, object_id, fields_)
        resp.media = {**changed, "image": self._describe(changed["object"])}

    def on_delete(self, req, resp, entity, object_id):
        spec, obj = self._item(entity, object_id)
        if not images.has_image(obj):
            _fail(404, "Not Found", f"item {object_id} has no image")
        resp.media = _changed(self.sim.modify, spec, object_id, dict(images.NO_IMAGE))


class Fire:
    """``POST /_sim/webhooks/fire``: post one object (current, or last state if deleted) to TDS."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def on_post(self, req, resp):
        body = _body(req)
        for key in ("url", "entity", "id"):
            if not body.get(key):
                _fail(400, "Missing Field", f"{key} is required")
        spec = _spec(str(body["entity"]))
        oid = str(body["id"])
        event = body.get("event", "updated")
        if event not in EVENTS:
            _fail(400, "Bad Event", f"event must be one of {EVENTS}")
        obj = self.sim.store.get(spec, oid) or self.sim.store.tombstone(spec, oid)
        if obj is None:
            _fail(404, "Not Found", f"no {spec.name} {oid}")
        try:
            result = self.sim.fire(str(body["url"]), body.get("token"), spec, obj, event,
                                   body.get("format", "default"), body.get("secret"), float(body.get("timeout", 10)))
        except ValueError as e:
            _fail(400, "Bad Webhook", str(e))
        resp.status = 200 if result.get("status") is not None else 502  # 502: TDS did not answer
        resp.media = result


def add_control_routes(app: falcon.App, sim: Simulator) -> None:
    objects = Objects(sim)
    app.add_route("/_sim/info", Info(sim))
    app.add_route("/_sim/reset", Reset(sim))
    app.add_route("/_sim/stats", StatsResource(sim))
    app.add_route("/_sim/faults", FaultsResource(sim))
    app.add_route("/_sim/objects/{entity}", objects)
    app.add_route("/_sim/objects/{entity}/{object_id}", objects, suffix="one")
    app.add_route("/_sim/objects/{entity}/{object_id}/image", ItemImageControl(sim))
    app.add_route("/_sim/webhooks/fire", Fire(sim))
