"""Every error answer is JSON ``{"error": code, "message": what to do}``; never a traceback.

The mapping of exceptions to answers lives here, registered once by ``register`` (``app.py``):
PostgreSQL or Redis not answering is 503 with ``Retry-After`` on every endpoint, a bad query
parameter 400 naming it, anything else unexpected 500 (logged with its traceback).
"""

from __future__ import annotations

import logging

import falcon
import redis
from sqlalchemy import exc

from tds_daemon import entities
from tds_daemon.oneline import first_line
from tds_daemon.refusal import Refusal
from tds_daemon.store.db import is_transient

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 30
REDIS_RETRY_AFTER_S = 5


class ApiError(falcon.HTTPError):
    """``detail``: for the log only (an error's type), never in the answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 detail: str | None = None):
        super().__init__(falcon.code_to_http_status(status), headers=headers)
        self.code, self.message, self.detail = code, message, detail

    def to_dict(self, obj_type=dict):
        return obj_type(error=self.code, message=self.message)


def database_unavailable(message: str = "TDS cannot reach its database; try again later",
                         detail: str | None = None) -> ApiError:
    return ApiError(503, "database_unavailable", message, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
                    detail=detail)


def redis_unavailable(error: BaseException | None = None, what: str = "what this asks for") -> ApiError:
    why = f" ({type(error).__name__})" if error is not None else ""
    return ApiError(503, "redis_unavailable", f"Redis does not answer{why}; {what} lives there, try again when "
                    "it is back", headers={"Retry-After": str(REDIS_RETRY_AFTER_S)})


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    if isinstance(error, ApiError):
        body = error.to_dict()
    else:  # Falcon's own (404 route, 405 method, ...)
        code = (error.title or "error").lower().replace(" ", "_")
        body = {"error": code, "message": error.description or error.title}
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON


def unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict) -> None:
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.error("unhandled error: method=%s path=%s error=%s", req.method, req.path, type(ex).__name__,
              exc_info=ex)
    raise ApiError(500, "internal_error", "TDS failed to handle this request; the error is in its log")


def _database(req: falcon.Request, resp: falcon.Response, ex: exc.SQLAlchemyError, params: dict) -> None:
    if isinstance(ex, exc.DataError):  # a value from the request PostgreSQL cannot take (out of range, ...)
        raise ApiError(400, "invalid_value", "PostgreSQL refused a value of this request: "
                       + first_line(ex.orig, 200)) from None
    if not is_transient(ex):
        unexpected(req, resp, ex, params)
    log.warning("database unavailable: method=%s path=%s error=%s", req.method, req.path,
                type(getattr(ex, "orig", None) or ex).__name__)
    raise database_unavailable() from None


def _redis(req: falcon.Request, resp: falcon.Response, ex: redis.RedisError, params: dict) -> None:
    if not isinstance(ex, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError):
        unexpected(req, resp, ex, params)
    log.warning("redis unavailable: method=%s path=%s error=%s", req.method, req.path, type(ex).__name__)
    raise redis_unavailable(ex) from None


def _bad_param(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict) -> None:
    raise ApiError(400, "invalid_parameter", ex.description or "a query parameter is invalid") from None


def _value(req: falcon.Request, resp: falcon.Response, ex: ValueError, params: dict) -> None:
    # psycopg2 refuses a NUL inside a string parameter before sending it: the request's value, not TDS.
    if "NUL (0x00)" in str(ex):
        raise ApiError(400, "invalid_value", "a value of this request contains a NUL character") from None
    unexpected(req, resp, ex, params)


def _refused(req: falcon.Request, resp: falcon.Response, ex: Refusal, params: dict) -> None:
    raise ApiError(ex.status, ex.code, ex.message) from None


def register(app: falcon.App) -> None:
    """The one place exceptions become answers (Falcon picks the most specific handler)."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(exc.SQLAlchemyError, _database)
    app.add_error_handler(redis.RedisError, _redis)
    app.add_error_handler(ValueError, _value)
    app.add_error_handler(Refusal, _refused)
    app.add_error_handler((falcon.HTTPInvalidParam, falcon.HTTPMissingParam), _bad_param)


def path_id(value: str, code: str, what: str) -> int:
    """A numeric id from the path; anything else is 404 naming what ids look like."""
    if value.isascii() and value.isdigit() and 0 < int(value) < 2**63:
        return int(value)
    raise ApiError(404, code, f"no {what} {value[:40]!r}: {what} ids are positive whole numbers")


def entity_param(value: str) -> str:
    """The registry name of an ``?entity=`` value (a name or an alias); anything else is 400 naming them."""
    spec = entities.resolve(value)
    if spec is None:
        raise invalid_param("entity", value, entities.BY_NAME, "unknown_entity")
    return spec.name


def invalid_param(name: str, value: str, known, code: str = "invalid_parameter") -> ApiError:
    return ApiError(400, code, f"query parameter {name}={value[:60]!r} is not known; "
                    f"known values: {', '.join(known)}")
