"""The Falcon app factory."""

from __future__ import annotations

import falcon

from ..broker import make_broker, redis_client
from ..config import Config
from ..db import make_engine
from ..dispatch import Dispatcher
from . import errors
from .exposition import MetricsResource
from .health import LiveResource, ReadyResource, WebhookHealthResource
from .webhooks import WebhookResource


def create_app(config: Config, *, engine=None, dispatcher=None) -> falcon.App:
    engine = engine or make_engine(config, pool_size=4, application_name="tds-api")
    if dispatcher is None:
        dispatcher = Dispatcher(make_broker(config), origin="intake")
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(errors.serialize_error)
    app.add_error_handler(Exception, errors.unexpected)
    app.add_route("/api/tds/webhooks/{entity}", WebhookResource(config, engine, dispatcher))
    app.add_route("/api/tds/webhooks/health", WebhookHealthResource(engine))
    app.add_route("/health/live", LiveResource())
    app.add_route("/health/ready", ReadyResource(engine, redis_client(config)))
    app.add_route("/metrics", MetricsResource(engine))
    return app
