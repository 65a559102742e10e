"""What the tests share besides fixtures: the environment they run in, waiting, child processes and the
database helpers (re-exported here), and the Zoho side in modules of their own (``support.sim`` the simulator,
``support.pull`` pulling, ``support.zoho_objects`` Zoho-shaped objects, ``support.tcp_proxy`` and
``support.notify_listener``). Fixtures live in ``tests/conftest.py``; test modules import from here, never
from conftest."""

from support.db import all_applied, applies_blocked, queue_counts, truncate
from support.env import ADMIN_TOKEN, PG_ADMIN_URL, REDIS_BASE, REDIS_DB, ROOT, TDS, TWO_OF_EACH, WEBHOOK_TOKEN
from support.processes import Api, Daemon, Processes, free_port, start_api, start_daemon, start_private_redis
from support.waiting import holds_for, wait_until

__all__ = ["ADMIN_TOKEN", "PG_ADMIN_URL", "REDIS_BASE", "REDIS_DB", "ROOT", "TDS", "WEBHOOK_TOKEN", "Api",
           "Daemon", "Processes", "all_applied", "applies_blocked", "free_port", "holds_for", "queue_counts",
           "TWO_OF_EACH", "start_api", "start_daemon", "start_private_redis", "truncate", "wait_until"]
