"""The schema revision the database is at and the one this TDS needs, read without Alembic: every command
checks them first, and importing Alembic costs more than the check (``migrate`` upgrades with Alembic)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from sqlalchemy import text

VERSIONS = Path(__file__).parent / "migrations" / "versions"
VERSION_TABLE = "tds_alembic_version"
_ASSIGNMENT = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:["']([^"']+)["']|None)\s*$""", re.M)


@functools.cache
def parents() -> dict[str, str | None]:
    """Each revision of the migrations shipped with this TDS → the one it follows (None for the first)."""
    found: dict[str, str | None] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        values = {m[1]: m[2] for m in _ASSIGNMENT.finditer(path.read_text())}
        if "revision" not in values:
            continue
        found[values["revision"]] = values.get("down_revision")
    return found


def head() -> str:
    """The newest revision: the one no other follows (the migrations are one line, never branched)."""
    chain = parents()
    followed = set(chain.values())
    heads = [rev for rev in chain if rev not in followed]
    if len(heads) != 1:
        raise RuntimeError(f"the migrations shipped have {len(heads)} heads, not one: {sorted(heads)}")
    return heads[0]


def known(revision: str | None) -> bool:
    """Whether this TDS has a migration of that id (None, an empty database, is known)."""
    return revision is None or revision in parents()


def current(conn) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    if conn.execute(text("SELECT to_regclass(:t)"), {"t": VERSION_TABLE}).scalar() is None:
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
