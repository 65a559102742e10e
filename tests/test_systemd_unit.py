"""systemd/tds.service and systemd/tds.toml: `systemd-analyze verify` is clean, the contract's directives are
there with the contract's values, and the example configuration validates. Fast: no daemon is started.

`systemd-analyze verify` checks that every Exec*= command exists and is executable, so it is run on a copy of
the unit whose ExecStart= points at this checkout's `tds` instead of /opt/tds/venv/bin/tds; nothing else is
changed in the copy. It does not resolve User=/Group= (systemd 252 says nothing about a user that does not
exist), so the copy keeps User=tds although this machine has no such user.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support import ROOT, TDS

from tds_daemon import config, settings

UNIT = ROOT / "systemd" / "tds.service"
EXAMPLE = ROOT / "systemd" / "tds.toml"
INSTALLED_TDS = "/opt/tds/venv/bin/tds"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists; keys may repeat (Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used in this unit"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"line {number}: a setting before the first section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not KEY=VALUE: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def seconds(value: str) -> float:
    """A systemd time span as this unit writes them: 30, 30s, 1min, 1min 30s, 500ms."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts and "".join(n + u for n, u in parts) == value.replace(" ", ""), f"not a time span: {value!r}"
    return sum(float(n) * units[u or "s"] for n, u in parts)


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def one(unit, key: str, section: str = "Service") -> str:
    values = [v for k, v in unit[section] if k == key]
    assert len(values) == 1, f"{key}= appears {len(values)} times in [{section}]"
    return values[0]


def checkout_tds() -> Path:
    for candidate in (ROOT / ".venv" / "bin" / "tds", Path(sys.executable).with_name("tds")):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no executable `tds` in this checkout's .venv: run `make install`")


def verify(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run systemd-analyze verify on ``text`` as tmp_path/tds.service; the stderr lines about that unit."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / "tds.service"
    path.write_text(text)
    proc = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""})
    ours = [line for line in proc.stderr.splitlines() if "tds.service" in line or str(tmp_path) in line]
    return proc, ours


def unit_for_here() -> str:
    original = UNIT.read_text()
    assert original.count(f"ExecStart={INSTALLED_TDS} ") == 1
    return original.replace(f"ExecStart={INSTALLED_TDS} ", f"ExecStart={checkout_tds()} ")


def test_systemd_analyze_verify_is_clean(tmp_path):
    proc, ours = verify(tmp_path, unit_for_here())
    print(f"systemd-analyze verify: exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}")
    assert proc.returncode == 0, proc.stderr
    assert ours == [], "\n".join(ours)


def test_verify_would_catch_a_bad_directive(tmp_path):
    # The check above is only worth something if verify complains about our file at all: an unknown key is
    # a warning on stderr with exit status 0, which is why stderr is checked too.
    text = unit_for_here().replace("[Service]\n", "[Service]\nWatchdogSecs=30s\n", 1)
    proc, ours = verify(tmp_path, text)
    assert any("WatchdogSecs" in line for line in ours), proc.stderr


def test_contract_directives(unit):
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "ExecReload") == "kill -HUP $MAINPID"
    assert one(unit, "KillMode") == "mixed"
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "NoNewPrivileges") == "yes"
    assert one(unit, "ProtectSystem") == "strict"
    assert one(unit, "PrivateTmp") == "yes"
    assert one(unit, "User") == "tds" and one(unit, "Group") == "tds"
    assert one(unit, "WantedBy", "Install") == "multi-user.target"

    argv = shlex.split(one(unit, "ExecStart"))
    assert argv[0] == INSTALLED_TDS and argv[1] == "run"
    # The file the unit names is the one every other `tds` command reads by default.
    assert argv[2:] == ["--config", config.DEFAULT_PATH]


def test_timeouts_fit_the_supervisor(unit):
    watchdog = seconds(one(unit, "WatchdogSec"))
    # The supervisor pings at half the interval; much less than 10 s would make a busy machine look hung.
    assert 10 <= watchdog <= 120
    drain = next(s.default for s in settings.SCHEMA if s.name == "supervisor.drain_timeout_s")
    # On SIGTERM the supervisor drains for up to drain_timeout_s, then gives its children a few seconds
    # to exit; systemd's SIGKILL must come after all of that, not in the middle of a drain.
    assert seconds(one(unit, "TimeoutStopSec")) > drain + 10


def test_writable_paths_are_the_metrics_directory(unit):
    runtime = one(unit, "RuntimeDirectory")
    env = dict(v.split("=", 1) for k, v in unit["Service"] if k == "Environment")
    # prepare_metrics_dir (tds/preflight.py) uses PROMETHEUS_MULTIPROC_DIR; it must be under the one
    # directory ProtectSystem=strict leaves writable (and PrivateTmp's /tmp).
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith(f"/run/{runtime}/")
    assert one(unit, "ReadWritePaths").lstrip("-") == f"/run/{runtime}"
    # Item images go under the state directory, the only other place the unit lets TDS write.
    images_dir = next(s.default for s in settings.SCHEMA if s.name == "images.dir")
    assert images_dir.startswith(f"/var/lib/{one(unit, 'StateDirectory')}/")
    # Secrets come from an optional environment file, never from the unit itself.
    assert one(unit, "EnvironmentFile") == "-/etc/tds/tds.env"
    assert not any(name.startswith("TDS_") for name in env)


def test_example_configuration_is_valid_and_holds_no_secret():
    with open(EXAMPLE, "rb") as f:
        doc = tomllib.load(f)
    secrets = {s.name for s in settings.SCHEMA if s.secret}
    present = {f"{section}.{key}" for section, body in doc.items() for key in body}
    assert present & secrets == set(), "secrets belong in /etc/tds/tds.env"

    # As the service sees it: the file plus the secrets from the environment file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDS_")}
    env.update(TDS_API_WEBHOOK_TOKEN="0123456789abcdef0123", TDS_API_ADMIN_TOKEN="fedcba9876543210fedc",
               TDS_ZOHO_CLIENT_ID="1000.CLIENT", TDS_ZOHO_CLIENT_SECRET="secret", TDS_ZOHO_REFRESH_TOKEN="1000.x")
    proc = subprocess.run([*TDS, "check-config", "--config", str(EXAMPLE)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"configuration {EXAMPLE} is valid" in proc.stdout
