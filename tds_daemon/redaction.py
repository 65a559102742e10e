"""URLs as TDS shows them: every URL in a command's output, a log line or a metric label goes through here.

A URL is read the way SQLAlchemy and libpq accept it, not only as RFC 3986 writes it: a password may hold
``/``, ``#``, ``?``, ``@`` or ``[`` unencoded, so everything between the first ``://`` and the last ``@`` is
the user part. Reading it that way masks too much when a path or query holds an ``@`` (never too little).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

MASK = "***"
_SECRET_PARAMS = ("password", "secret", "token")


@dataclass(frozen=True)
class UrlParts:
    scheme: str
    userinfo: str | None  # None: no ``@`` at all
    host: str  # host[:port] as written, possibly empty (a PostgreSQL URL may name none)
    rest: str  # path, query and fragment as written

    @property
    def query(self) -> str:
        return self.rest.partition("#")[0].partition("?")[2]


def split_url(value: str) -> UrlParts | None:
    """``value``'s parts read as above, or None when it is not ``scheme://…``."""
    scheme, sep, after = value.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return None
    userinfo, at, tail = after.rpartition("@")
    cut = min((i for i in (tail.find(c) for c in "/?#") if i >= 0), default=len(tail))
    return UrlParts(scheme, userinfo if at else None, tail[:cut], tail[cut:])


def mask_url(value: str) -> str:
    """``value`` with the password of its user part (all after the user part's first ``:``) and any
    password/secret/token query parameter as ***; a value that is not a URL is returned unchanged."""
    parts = split_url(value) if isinstance(value, str) else None
    if parts is None:
        return value
    userinfo = parts.userinfo
    if userinfo is not None and ":" in userinfo:
        userinfo = f"{userinfo.partition(':')[0]}:{MASK}"
    rest = parts.rest
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(s in k.lower() for k, _ in pairs for s in _SECRET_PARAMS):
        path, _, fragment = rest.partition("#")
        query = urlencode([(k, MASK if any(s in k.lower() for s in _SECRET_PARAMS) else v) for k, v in pairs],
                          safe="*")
        rest = f"{path.partition('?')[0]}?{query}" + (f"#{fragment}" if fragment else "")
    return f"{parts.scheme}://{'' if userinfo is None else userinfo + '@'}{parts.host}{rest}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no user, password, path or query (what a label may show)."""
    parts = split_url(url)
    return MASK if parts is None else f"{parts.scheme}://{parts.host}"
