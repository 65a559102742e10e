"""Pulling as the tests drive it: in-process syncs with the configuration a TDS process would load
(``Tds``), and the ``tds`` command as a subprocess (``cli``). The ``pull_env`` and ``tds`` fixtures
(conftest) give each test a clean database and a Redis namespace of its own."""

from __future__ import annotations

import subprocess

from support.env import ROOT, TDS
from tds_daemon.apply.broker import redis_client
from tds_daemon.config import load
from tds_daemon.pull import launch
from tds_daemon.pull.zoho import ZohoClient
from tds_daemon.store.db import make_engine


class Tds:
    """In-process syncs with the configuration a TDS process would load from ``env``."""

    def __init__(self, env: dict[str, str]):
        self.config = load(environ=env)
        self.engine = make_engine(self.config, pool_size=4, application_name="tds-test-sync")
        self.clients: list[ZohoClient] = []

    def client(self, purpose: str = "scheduled") -> ZohoClient:
        client = ZohoClient(self.config, redis_client(self.config), purpose=purpose, engine=self.engine)
        self.clients.append(client)
        return client

    def sync(self, entity: str, kind: str = "full", *, client: ZohoClient | None = None, progress=None) -> dict:
        """One run as ``tds sync`` does it; the run as recorded (it may have failed)."""
        return launch.pull(self.config, self.engine, client or self.client(), entity, kind, origin="cli",
                           progress=progress).run

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.engine.dispose()


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*TDS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
