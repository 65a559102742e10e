"""How each configured subscriber stands: how old the oldest event it has not had yet is, and how many of its
events are dead letters. ``/metrics`` reads it at every scrape (``tds_events_lag_seconds``,
``tds_events_dead_letters``), so it is one statement, and cheap on a large outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Float, cast, func, literal, select, union_all
from sqlalchemy.engine import Engine

from tds_daemon.publish import feed
from tds_daemon.store.schema import event_dead_letters, event_subscribers, events
from tds_daemon.subscribers import Subscriber


@dataclass(frozen=True)
class Standing:
    subscriber: Subscriber
    lag_s: float  # age of the oldest event it has not had; 0 when it has had everything it takes
    dead_letters: int


def _one(i: int, sub: Subscriber):
    """The row of one subscriber. The oldest pending event is the first id above its cursor that its filters
    take: an index scan of the outbox's primary key from the cursor on, which stops at the first match (the
    pusher moves the cursor over events the subscriber does not take, so that scan stays short)."""
    cursor = select(event_subscribers.c.cursor).where(event_subscribers.c.url == sub.url).scalar_subquery()
    oldest = (select(events.c.created_at).where(events.c.id > cursor, *feed.matching(sub.types, sub.entities))
              .order_by(events.c.id).limit(1).scalar_subquery())
    dead = (select(func.count()).select_from(event_dead_letters).where(event_dead_letters.c.url == sub.url)
            .scalar_subquery())
    # No state row yet (a subscriber tds run has not started on): the cursor is NULL, nothing is pending.
    lag = func.coalesce(func.greatest(0, func.extract("epoch", func.now() - oldest)), 0)
    return select(literal(i).label("i"), cast(lag, Float).label("lag_s"), dead.label("dead"))


def standings(engine: Engine, subscribers: Iterable[Subscriber]) -> list[Standing]:
    """Every subscriber's standing, in the order given (empty without subscribers, and no query)."""
    subs = list(subscribers)
    if not subs:
        return []
    rows = [_one(i, s) for i, s in enumerate(subs)]
    with engine.connect() as conn:
        got = {r.i: r for r in conn.execute(union_all(*rows) if len(rows) > 1 else rows[0])}
    return [Standing(s, float(got[i].lag_s), int(got[i].dead)) for i, s in enumerate(subs)]
