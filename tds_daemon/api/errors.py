"""Every error answer is JSON ``{"error": code, "message": what to do}``; never a traceback."""

from __future__ import annotations

import logging

import falcon

log = logging.getLogger(__name__)


class ApiError(falcon.HTTPError):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(falcon.code_to_http_status(status), headers=headers)
        self.code, self.message = code, message

    def to_dict(self, obj_type=dict):
        return obj_type(error=self.code, message=self.message)


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
