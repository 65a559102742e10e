"""An error in one line, for log lines, run records and operator messages.

Database errors go on with the SQL statement and its parameters after the first line: never past it
(the rest is noise to an operator and may hold a payload).
"""

from __future__ import annotations


def first_line(error: object, limit: int = 300) -> str:
    """The first non-empty line of ``str(error)`` (at most ``limit`` characters), or the type's name."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


def described(error: BaseException, limit: int = 300) -> str:
    """``Type: first line``; the type alone when the message is empty."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__
