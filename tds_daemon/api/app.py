"""The Falcon app factory."""

from __future__ import annotations

import falcon

from tds_daemon import jsoncodec
from tds_daemon.api import errors
from tds_daemon.api.alerts import AlertAcknowledgeResource, AlertsResource
from tds_daemon.api.auth import AccessControl
from tds_daemon.api.breakers import BreakerResetResource, BreakersResource
from tds_daemon.api.dashboard import DashboardResource, LoginResource, LogoutResource, StaticResource
from tds_daemon.api.datachecks import DataCheckCollector, DataValidationResource
from tds_daemon.api.deadletter import DeadLetterReplayResource, DeadLetterResource
from tds_daemon.api.events import EventsReplayResource, EventsResource
from tds_daemon.api.exposition import LeaderCollector, MetricsResource, SubscriberCollector
from tds_daemon.api.healing import HealingRunResource, HealingRunsResource
from tds_daemon.api.health import LiveResource, ReadyResource, WebhookHealthResource
from tds_daemon.api.images import ImageResource
from tds_daemon.api.logins import LoginLimiter
from tds_daemon.api.monitoring import MonitoringHealthResource
from tds_daemon.api.objects import ObjectResource
from tds_daemon.api.openapi import OpenApiResource
from tds_daemon.api.scheduler import SchedulerJobRunResource, SchedulerJobsResource
from tds_daemon.api.session import Sessions
from tds_daemon.api.stats import StatsResource, StatsRunResource
from tds_daemon.api.syncruns import (
    BulkStatusResource,
    BulkSyncResource,
    EntitiesResource,
    RunResource,
    RunsResource,
    RunStarter,
    StockItemsResource,
    SyncResource,
)
from tds_daemon.api.webhookrecent import WebhookRecentResource
from tds_daemon.api.webhooks import WebhookResource
from tds_daemon.api.webhookstats import WebhookStatsResource
from tds_daemon.apply.broker import make_broker, redis_client
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.config import Config
from tds_daemon.guard.breakers import Breakers
from tds_daemon.pull.zoho.budget import Budget
from tds_daemon.store.db import make_engine


def intake_engine(config: Config):
    """Storing webhooks: one statement, atomic by itself, so autocommit (one round trip per group, not
    three), and no ping before each write; ``GroupCommit`` tries once more on a connection found dead."""
    return make_engine(config, pool_size=2, application_name="tds-api-intake", pre_ping=False, autocommit=True)


def create_app(config: Config, *, engine=None, dispatcher=None) -> falcon.App:
    engine = engine or make_engine(config, pool_size=4, application_name="tds-api")
    if dispatcher is None:
        dispatcher = Dispatcher(make_broker(config), origin="intake")
    sessions = Sessions(config.api.admin_token, config.api.session_hours * 3600, engine)
    access = AccessControl(config.api.admin_token, config.api.webhook_token, sessions)
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=[access])
    # Every JSON body in and out through orjson (jsoncodec): cheaper than Falcon's default, the standard
    # library's json, on a path every webhook takes.
    handler = falcon.media.JSONHandler(dumps=jsoncodec.dumpb, loads=jsoncodec.loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.strip_url_path_trailing_slash = True
    errors.register(app)
    app.add_route("/api/tds/webhooks/{entity}", WebhookResource(config, intake_engine(config), dispatcher))
    app.add_route("/api/tds/webhooks/health", WebhookHealthResource(engine))
    app.add_route("/api/tds/webhooks/stats", WebhookStatsResource(engine))
    app.add_route("/api/tds/webhooks/recent", WebhookRecentResource(engine))
    app.add_route("/health/live", LiveResource())
    app.add_route("/openapi.json", OpenApiResource())
    client = redis_client(config)  # readiness and the scheduler's state share one connection pool
    app.add_route("/health/ready", ReadyResource(engine, client))
    breakers = Breakers.from_config(config, client, alerts=engine)
    budget = Budget.from_config(config, client, engine)
    leader = LeaderCollector(client, config.redis.namespace) if config.scheduler.enabled else None
    metrics = MetricsResource(engine, config.database.entity_schema, breakers, budget, leader)
    metrics.registry.register(DataCheckCollector(engine))
    metrics.registry.register(SubscriberCollector(engine, config.subscribers))
    app.add_route("/metrics", metrics)
    app.add_route("/api/tds/circuit-breakers", BreakersResource(breakers))
    app.add_route("/api/tds/circuit-breakers/{name}/reset", BreakerResetResource(breakers, engine))
    starter = RunStarter(engine, dispatcher)
    app.add_route("/api/tds/entities", EntitiesResource(engine, config, budget))
    app.add_route("/api/tds/sync/{entity}", SyncResource(starter))
    app.add_route("/api/tds/sync/stock/specific", StockItemsResource(engine, dispatcher))
    app.add_route("/api/tds/runs", RunsResource(engine))
    app.add_route("/api/tds/runs/{run_id}", RunResource(engine))
    app.add_route("/api/tds/auto-healing/run", HealingRunResource(config, engine, dispatcher))
    app.add_route("/api/tds/auto-healing/runs", HealingRunsResource(engine))
    app.add_route("/api/tds/stats", StatsResource(engine))
    app.add_route("/api/tds/stats/run", StatsRunResource(dispatcher))
    app.add_route("/api/tds/monitoring/scheduler/jobs", SchedulerJobsResource(config, client))
    app.add_route("/api/tds/monitoring/scheduler/jobs/{job_id}/run",
                  SchedulerJobRunResource(config, client, engine, dispatcher))
    app.add_route("/api/tds/monitoring/health", MonitoringHealthResource(config, engine, client))
    app.add_route("/api/tds/images/{item_id}", ImageResource(config, engine))
    app.add_route("/api/tds/objects/{entity}/{zoho_id}", ObjectResource(engine, config.database.entity_schema))
    app.add_route("/api/tds/dead-letter", DeadLetterResource(engine))
    app.add_route("/api/tds/dead-letter/replay", DeadLetterReplayResource(engine, dispatcher))
    app.add_route("/api/tds/events", EventsResource(engine))
    app.add_route("/api/tds/events/replay", EventsReplayResource(engine))
    app.add_route("/api/tds/data-validation/{check}", DataValidationResource(engine, config.database.entity_schema))
    app.add_route("/api/tds/alerts", AlertsResource(engine))
    app.add_route("/api/tds/alerts/{alert_id}/acknowledge", AlertAcknowledgeResource(engine))
    app.add_route("/api/zoho/bulk-sync/status", BulkStatusResource(engine))
    app.add_route("/api/zoho/bulk-sync/{what}", BulkSyncResource(starter))
    app.add_route("/dashboard", DashboardResource(sessions))
    limiter = LoginLimiter(client, config.redis.namespace)
    app.add_route("/dashboard/login", LoginResource(sessions, config.api.admin_token, limiter,
                                                    config.api.max_body_bytes))
    app.add_route("/dashboard/logout", LogoutResource(sessions))
    app.add_route("/dashboard/static/{name}", StaticResource())
    return app
