"""A request the core refuses, with the answer it deserves: an HTTP status, a stable code and a message
a person can act on. The API maps it in one place (``api/errors.py``); the CLI prints the message."""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
