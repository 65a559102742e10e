"""The tests' HTTP calls, all with one TLS context: ``httpx.get()`` and a bare ``httpx.Client()`` build a new
one each time (the whole CA bundle read again, tens of milliseconds of CPU), and readiness polls call them
many times a second."""

from __future__ import annotations

import httpx

from tds_daemon import tls


def get(url, **kwargs) -> httpx.Response:
    return httpx.get(url, verify=tls.context(), **kwargs)


def post(url, **kwargs) -> httpx.Response:
    return httpx.post(url, verify=tls.context(), **kwargs)


def Client(**kwargs) -> httpx.Client:  # noqa: N802 - stands for httpx.Client
    return httpx.Client(verify=tls.context(), **kwargs)
