"""Entity actors: one Dramatiq actor per registry spec, each message a list of sync item ids handed to
the apply core (``tds_daemon.apply.items``) with the worker's engine, breakers and settings."""

from __future__ import annotations

import dramatiq

from actors import runtime
from tds_daemon import entities
from tds_daemon.apply.items import Applier


def apply_items(item_ids: list[int] | int) -> None:
    """Apply one message's items (a single id from a message of an earlier version is a list of one)."""
    rt = runtime.get()
    Applier.from_config(rt.config, rt.engine, rt.breakers).apply(item_ids)


def declare(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Declare every entity actor on the broker; their names and queues come from the registry."""
    return {
        spec.name: dramatiq.actor(apply_items, actor_name=spec.actor_name, queue_name=spec.queue,
                                  broker=broker)
        for spec in entities.ENTITIES
    }
