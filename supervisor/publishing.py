"""The event pushers of ``tds run``: threads of the supervisor, one per configured subscriber.

They start with the daemon, are replaced by a reload only when the subscribers or the database change, and
stop before the API and the workers drain. They live here rather than in a worker because a push waits on
someone else's server: a subscriber that is slow or down holds one of these threads, never a worker that
applies webhooks.
"""

from __future__ import annotations

import logging

from tds_daemon.config import Config

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 12.0  # beyond the pusher's 10 s read timeout


class Publishing:
    """The running publisher (if any subscriber is configured) and the configuration it was started with."""

    def __init__(self):
        self.publisher = None
        self.engine = None
        self.started_with: tuple | None = None

    def apply(self, config: Config) -> None:
        """Start the pushers ``config`` asks for, replacing the running ones if they differ."""
        wanted = (config.subscribers, config.database.url)
        if wanted == self.started_with:
            return
        self.stop()
        self.started_with = wanted
        if not config.subscribers:
            return
        # Imported here: it loads tds_daemon.metrics, which needs the metrics directory the CLI prepares.
        from tds_daemon.publish.runner import Publisher
        from tds_daemon.store.db import make_engine

        # Per subscriber: the connection holding its lock and one for its steps; and the listener's.
        self.engine = make_engine(config, pool_size=2 * len(config.subscribers) + 1, application_name="tds-events")
        self.publisher = Publisher(self.engine, list(config.subscribers))
        self.publisher.start()
        log.info("events: pushing to %s", ", ".join(s.label for s in config.subscribers))

    def stop(self) -> None:
        if self.publisher is not None:
            if not self.publisher.stop(STOP_TIMEOUT_S):
                log.warning("events: a push still waiting on its subscriber is left to time out")
            self.publisher = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        self.started_with = None
