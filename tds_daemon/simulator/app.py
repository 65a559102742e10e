"""The Falcon app: Zoho's accounts server, Books v3 and Inventory v1, and the control API.

Every request to Zoho's side passes ``Gate`` first, in the order Zoho checks: the ``down`` fault, the token
(401), the organization (400), the limits (429, ``limits.py``), the ``latency_ms`` and ``error_rate``
faults, then the resource (a list, a get, or an item's image). From the limits on, every answer carries
Zoho's ``X-Rate-Limit-Limit``, ``-Remaining`` and ``-Reset``. Codes, list parameters and the
unconfirmed parts: docs/ARCHITECTURE.md, "The Zoho simulator".
"""

from __future__ import annotations

import json
import time
import urllib.parse

import falcon
import orjson

from tds_daemon import entities
from tds_daemon.simulator import errors, images
from tds_daemon.simulator.control import add_control_routes
from tds_daemon.simulator.data import list_row
from tds_daemon.simulator.errors import ZohoError
from tds_daemon.simulator.sim import APPS, Simulator, routes
from tds_daemon.simulator.zohotime import parse_param

MAX_PER_PAGE = 200
_SKIP_ORG = {"organizations"}


def _app_of(path: str) -> str | None:
    for app, prefix in APPS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return app
    return None


def _int_param(req: falcon.Request, name: str, default: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_value(name) from None
    if value < 1:
        raise errors.invalid_value(name)
    return value


def _render(resp: falcon.Response, err: ZohoError) -> None:
    resp.status = err.status
    resp.media = err.body
    for k, v in err.headers.items():
        resp.set_header(k, v)


def _unavailable(resp: falcon.Response) -> None:
    resp.status = 503
    resp.content_type = "text/html"
    resp.text = errors.UNAVAILABLE_HTML


class Gate:
    """Middleware: everything Zoho checks before a resource answers (see the module docstring)."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        app = _app_of(req.path)
        req.context.app, req.context.quota, req.context.in_flight = app, None, None
        oauth = req.path.startswith("/oauth/")
        if app is None and not oauth:
            return
        faults = self.sim.faults.snapshot()
        if faults.down:
            self.sim.stats.inc("down", "answered_503")
            _unavailable(resp)
            resp.complete = True
            return
        if oauth:
            return
        stats = self.sim.stats
        stats.inc("apps", app, "requests")
        try:
            self._check(req, app)
            refused = None
        except ZohoError as e:
            refused = e
        try:
            if faults.latency_ms:  # after the checks: a request let through is in flight while it waits
                time.sleep(faults.latency_ms / 1000)
            if refused is not None:
                _render(resp, refused)
                resp.complete = True
                return
            injected = self.sim.faults.roll()
            if injected:
                stats.inc("apps", app, "injected_errors")
                if injected == 500:
                    _render(resp, errors.internal())
                else:
                    _unavailable(resp)
                resp.complete = True
        except BaseException:
            self._release(req)  # Falcon calls no process_response for a process_request that raised
            raise

    def _check(self, req: falcon.Request, app: str) -> None:
        header = req.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "zoho-oauthtoken" or not token.strip():
            raise errors.no_auth()
        if not self.sim.tokens.valid(token.strip()):
            raise errors.bad_token()
        rest = req.path[len(APPS[app]):].strip("/")
        if rest.split("/", 1)[0] in _SKIP_ORG:
            return
        org = req.get_param("organization_id")
        if not org:
            raise errors.missing_org()
        if org != self.sim.settings.organization_id:
            if not org.isdigit():
                raise errors.invalid_value("organization_id")
            raise errors.foreign_org(org)
        req.context.quota, refused = self.sim.limiter.admit(app, org)
        if refused is not None:
            raise refused
        req.context.in_flight = (app, org)

    def _release(self, req: falcon.Request) -> None:
        in_flight, req.context.in_flight = req.context.in_flight, None
        if in_flight is not None:
            self.sim.limiter.release(*in_flight)

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        """Also when the resource raised: the request leaves the in-flight count, and an answer that
        passed the checks carries the organization's ``X-Rate-Limit-*`` headers."""
        app = getattr(req.context, "app", None)
        if app is None:
            return
        self._release(req)
        self.sim.stats.inc("apps", app, "status", str(resp.status_code))
        if req.context.quota is not None:
            for name, value in req.context.quota.headers().items():
                resp.set_header(name, value)


class TokenResource:
    """``POST /oauth/v2/token`` (Zoho's accounts server)."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = {k: v if isinstance(v, str) else v[-1] for k, v in req.params.items()}
        raw = req.bounded_stream.read()
        if raw:
            form.update(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        status, body, outcome = self.sim.tokens.grant(form, req.prefix, self.sim.faults.snapshot().token_ttl_s)
        self.sim.stats.inc("oauth", outcome)
        resp.status = status
        resp.media = body


class Collection:
    """``GET /<app>/<collection>`` (list) and ``GET /<app>/<collection>/<id>`` (get)."""

    def __init__(self, sim: Simulator, app: str):
        self.sim, self.app = sim, app
        self.routes = routes(app)

    def _specs(self, collection: str):
        specs = self.routes.get(collection)
        if not specs:
            raise errors.bad_url()
        return specs

    def on_get(self, req: falcon.Request, resp: falcon.Response, collection: str) -> None:
        specs = self._specs(collection)
        chosen = [s for s in specs if all(req.get_param(k) in (None, "", v) for k, v in s.list_params)]
        if not chosen:  # e.g. contact_type=partner
            bad = next(k for s in specs for k, _ in s.list_params if req.get_param(k))
            raise errors.invalid_value(bad)
        page = _int_param(req, "page", 1)
        per_page = min(_int_param(req, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
        sort_column = req.get_param("sort_column") or "created_time"
        lm_fields = {self.sim.store.factory.last_modified_field(s) for s in chosen} - {None}
        if sort_column not in lm_fields | {"created_time"} and not self.sim.store.has_field(chosen, sort_column):
            raise errors.invalid_value("sort_column")
        order = (req.get_param("sort_order") or "D").upper()
        if order not in ("A", "D"):
            raise errors.invalid_value("sort_order")
        since = None
        for field in sorted(lm_fields):
            raw = req.get_param(field)
            if raw:
                try:
                    since = parse_param(raw)
                except ValueError:
                    raise errors.invalid_value(field) from None
        rows = self.sim.store.select(chosen, sort_column=sort_column, descending=order == "D", since=since)
        start = (page - 1) * per_page
        window = rows[start:start + per_page]
        for spec in chosen:
            self.sim.stats.inc("entities", spec.name, "list")
        resp.media = {
            "code": 0, "message": "success", chosen[0].list_key: [list_row(o) for o in window],
            "page_context": {"page": page, "per_page": per_page, "has_more_page": len(rows) > start + per_page,
                             "report_name": chosen[0].list_key.replace("_", " ").title(),
                             "applied_filter": "Status.All", "sort_column": sort_column, "sort_order": order},
        }

    def on_get_object(self, req: falcon.Request, resp: falcon.Response, collection: str, object_id: str) -> None:
        specs = self._specs(collection)
        for spec in specs:
            obj = self.sim.store.get(spec, object_id)
            if obj is not None:
                self.sim.stats.inc("entities", spec.name, "get")
                resp.media = {"code": 0, "message": "success", spec.object_key: obj}
                return
        raise errors.not_found(specs[0].object_key.replace("_", " ").title())


class ItemImage:
    """``GET /inventory/v1/items/{item_id}/image``: the item's image bytes (see the module docstring)."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.spec = entities.get("product")

    def on_get(self, req: falcon.Request, resp: falcon.Response, collection: str, object_id: str) -> None:
        if collection != self.spec.list_path.strip("/"):
            raise errors.bad_url()
        stats = self.sim.stats
        stats.inc("entities", self.spec.name, "image")
        obj = self.sim.store.get(self.spec, object_id)
        if obj is None:
            stats.inc("images", "not_found")
            raise errors.not_found(self.spec.object_key.title())
        faults = self.sim.faults.snapshot()
        if faults.image_fault:
            stats.inc("images", "faulted", faults.image_fault)
            resp.content_type, resp.data = images.fault_answer(faults.image_fault, faults.image_oversize_bytes)
            return
        image = images.of_item(self.sim.store.seed, obj)
        if image is None:
            stats.inc("images", "not_found")
            raise images.not_found()
        resp.data, resp.content_type = image
        resp.set_header("Content-Disposition", f'inline; filename="{obj.get("image_name") or "image"}"')
        stats.inc("images", "served")
        stats.inc("images", "bytes", n=len(image[0]))


class Organizations:
    """``GET /<app>/organizations``: the one simulated organization (no organization_id needed)."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    def _org(self) -> dict:
        s = self.sim.settings
        return {"organization_id": s.organization_id, "name": s.organization_name, "contact_name": "TDS",
                "email": "admin@example.com", "is_default_org": True, "language_code": "ar", "time_zone": "Asia/Riyadh",
                "currency_code": "SAR", "currency_symbol": "ر.س", "is_org_active": True}

    def on_get(self, req, resp) -> None:
        resp.media = {"code": 0, "message": "success", "organizations": [self._org()]}

    def on_get_one(self, req, resp, org_id: str) -> None:
        if org_id != self.sim.settings.organization_id:
            raise errors.foreign_org(org_id)
        resp.media = {"code": 0, "message": "success", "organization": self._org()}


def _zoho_error(req, resp, ex: ZohoError, params) -> None:
    _render(resp, ex)


def _http_error(req, resp, ex: falcon.HTTPError, params) -> None:
    """Falcon's own errors (no route, wrong method, bad body) in the shape the path speaks."""
    if _app_of(req.path) is not None or req.path.startswith("/oauth/"):
        err = errors.bad_method() if ex.status_code == 405 else errors.bad_url() if ex.status_code == 404 else \
            ZohoError(ex.status_code, 2, ex.title or "Invalid request")
        _render(resp, err)
        return
    resp.status = ex.status_code
    resp.media = {"error": (ex.title or "error").lower().replace(" ", "_"), "message": ex.description or ex.title}


def _unexpected(req, resp, ex: Exception, params) -> None:
    if isinstance(ex, (falcon.HTTPError, ZohoError)):
        raise ex
    resp.status = 500
    resp.media = errors.internal().body if _app_of(req.path) else {"error": "internal", "message": repr(ex)}


def _loads(data):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _dumps(obj) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj).encode()


def create_app(sim: Simulator) -> falcon.App:
    app = falcon.App(middleware=[Gate(sim)])
    # Pages of 200 Zoho objects: orjson keeps the simulator's share of a benchmark's CPU small. What orjson
    # refuses (a lone surrogate such as "\ud800", which Zoho's JSON can hold) the standard library reads and
    # writes as an escape, so that a test can make the simulator serve it.
    json_handler = falcon.media.JSONHandler(dumps=_dumps, loads=_loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = False
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(ZohoError, _zoho_error)
    app.add_route("/oauth/v2/token", TokenResource(sim))
    orgs = Organizations(sim)
    for name, prefix in APPS.items():
        collection = Collection(sim, name)
        app.add_route(prefix + "/organizations", orgs)
        app.add_route(prefix + "/organizations/{org_id}", orgs, suffix="one")
        app.add_route(prefix + "/{collection}", collection)
        app.add_route(prefix + "/{collection}/{object_id}", collection, suffix="object")
    app.add_route(APPS["inventory"] + "/{collection}/{object_id}/image", ItemImage(sim))
    add_control_routes(app, sim)
    return app
