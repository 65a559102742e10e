"""Where the tests run: the repository, the ``tds`` command, the tokens and the servers they use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PG_ADMIN_URL = os.environ.get("TDS_TEST_PG", "postgresql+psycopg2://127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TDS_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("TDS_TEST_REDIS_DB", "11"))
WEBHOOK_TOKEN = "test-webhook-token"
ADMIN_TOKEN = "test-admin-token"
TDS = [sys.executable, "-m", "tds"]

# The settings of a daemon whose test is about several processes (the suite's default is one of each).
TWO_OF_EACH = {"TDS_API_PROCESSES": "2", "TDS_WORKERS_PROCESSES": "2"}
