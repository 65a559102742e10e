"""Event subscribers as the configuration declares them: ``[[events.subscribers]]`` tables.

Each names a URL to POST events to, its ``whsec_`` secret, and optionally which event ``types`` and which
``entities`` it takes. The check here is what ``tds check-config`` and a reload apply, so that a subscriber
TDS could not push to, or one a consumer could not verify, is refused before it is running.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tds_daemon import entities
from tds_daemon.redaction import mask_url, origin, split_url

ENTITY_SYNCED = "tds.zoho.entity.synced"
SYNC_COMPLETED = "tds.zoho.sync.completed"
EVENT_TYPES = (ENTITY_SYNCED, SYNC_COMPLETED)
SECRET_PREFIX = "whsec_"
KEYS = ("url", "secret", "types", "entities", "name")
MAX_NAME = 64
MAKE_SECRET = "python3 -c 'import base64,os; print(\"whsec_\" + base64.b64encode(os.urandom(32)).decode())'"


@dataclass(frozen=True)
class Subscriber:
    url: str
    secret: str
    types: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    name: str = ""

    @property
    def label(self) -> str:
        """The subscriber in metrics and logs: its name, else ``scheme://host[:port]`` alone (a URL's path or
        query may be its secret, as a webhook URL's often is)."""
        return self.name or origin(self.url)


def event_entities() -> tuple[str, ...]:
    """What an event's ``entity`` can be: every registry entity, and the item image."""
    return tuple(e.name for e in entities.ENTITIES) + (entities.IMAGE_ENTITY,)


def secret_problem(secret: Any) -> str | None:
    """Why a secret is unusable, or None: it must be ``whsec_`` and the base64 of a 24 to 64 byte key, as the
    Standard Webhooks specification defines it (its libraries read nothing else)."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        return f"secret must be whsec_ followed by the base64 of a random key; make one with: {MAKE_SECRET}"
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return "secret after whsec_ is not base64"
    if not 24 <= len(key) <= 64:
        return f"secret's key must be 24 to 64 bytes, it is {len(key)}"
    return None


def _entry_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["must be a [[events.subscribers]] table"]
    said = [f"unknown key {k!r} (known: {', '.join(KEYS)})" for k in entry if k not in KEYS]
    url = entry.get("url")
    parts = split_url(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.host:
        said.append("url must be an http:// or https:// URL with a host")
    elif not _unambiguous(url):
        said.append("url must have any / ? # @ [ ] of its user or password, and any @ of its path or query, "
                    "percent-encoded (%2F %3F %23 %40 %5B %5D)")
    problem = secret_problem(entry.get("secret"))
    if problem:
        said.append(problem)
    for key, known in (("types", EVENT_TYPES), ("entities", event_entities())):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            said.append(f"{key} must be a list of strings")
            continue
        wrong = [v for v in value if v not in known]
        if wrong:
            said.append(f"{key} has {', '.join(map(repr, wrong))}, not one of {', '.join(known)}")
    name = entry.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        said.append(f"name must be a string of at most {MAX_NAME} characters")
    return said


def _unambiguous(url: str) -> bool:
    """Whether the HTTP client reads the same user part and host in ``url`` as every URL TDS shows does."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return False
    userinfo, at, host = parts.netloc.rpartition("@")
    mine = split_url(url)
    return (userinfo if at else None) == mine.userinfo and host == mine.host


def check(value: Any) -> list[str]:
    """Every problem of the subscriber tables, each prefixed by its position (empty: they are usable)."""
    said = []
    for i, entry in enumerate(value):
        said += [f"[{i}]: {p}" for p in _entry_problems(entry)]
    urls = [e.get("url") for e in value if isinstance(e, dict)]
    said += [f"[{i}]: url is the same as [{urls.index(u)}]'s" for i, u in enumerate(urls) if urls.index(u) < i]
    labels = [parse([e])[0].label for e in value if not _entry_problems(e)]
    said += [f"two subscribers would both be shown as {x!r}: give them different names"
             for x in sorted({x for x in labels if labels.count(x) > 1})]
    return said


def parse(value: Any) -> tuple[Subscriber, ...]:
    """The subscribers of a checked ``events.subscribers`` value."""
    return tuple(Subscriber(url=e["url"], secret=e["secret"], types=tuple(e.get("types", ())),
                            entities=tuple(e.get("entities", ())), name=e.get("name", "")) for e in value)


def redacted(value: Any) -> list[dict[str, Any]]:
    """The subscribers as ``tds status`` and ``check-config`` may show them: no secret, no URL password."""
    return [{"url": mask_url(s.url), "secret": "(set)", "types": list(s.types), "entities": list(s.entities),
             "label": s.label} for s in parse(value)]
