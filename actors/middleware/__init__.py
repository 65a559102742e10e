"""Cross-cutting concerns of the worker processes, one middleware per module."""

from actors.middleware.recovery import Recovery

__all__ = ["Recovery"]
