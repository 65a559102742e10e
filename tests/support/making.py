"""Fixtures that make objects on demand and let go of every one when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def made_by(make: Callable[..., T], *finish: Callable[[T], Any]) -> Iterator[Callable[..., T]]:
    """For a fixture's ``yield from``: yields a function that calls ``make`` and remembers what it made; at
    teardown each ``finish`` step is applied to everything made, in order, before the next step."""
    made: list[T] = []

    def build(*args, **kwargs) -> T:
        thing = make(*args, **kwargs)
        made.append(thing)
        return thing

    yield build
    for step in finish:
        for thing in made:
            step(thing)
