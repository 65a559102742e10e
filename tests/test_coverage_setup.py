"""`make coverage`: the measurement counts what the daemon's child processes run, and its summary keeps the
simulator out of the total."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from support import ROOT

_spec = importlib.util.spec_from_file_location("coverage_summary", ROOT / "ops" / "dev" / "coverage_summary.py")
coverage_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coverage_summary)

# Runs under `coverage run` as the test suite does; its child stands for a `tds` process: it forks (as
# gunicorn forks its workers) a grandchild that ends with os._exit, then waits to be ended by SIGTERM.
PARENT = """
import os, signal, subprocess, sys, time
ready = sys.argv[2]
child = subprocess.Popen([sys.executable, sys.argv[1], ready])
deadline = time.monotonic() + 30
while not os.path.exists(ready) and time.monotonic() < deadline and child.poll() is None:
    time.sleep(0.02)
os.kill(child.pid, signal.SIGTERM)
sys.exit(0 if os.path.exists(ready) and child.wait(30) == -signal.SIGTERM else 1)
"""

CHILD = """
import os, signal, sys
from tds_daemon.oneline import described, first_line
pid = os.fork()
if pid == 0:
    described(ValueError("in the forked grandchild"))
    os._exit(0)
os.waitpid(pid, 0)
first_line(ValueError("in the child"))
open(sys.argv[1], "w").close()
signal.pause()
"""


def test_a_child_ended_by_sigterm_and_its_forked_child_are_measured(tmp_path):
    (tmp_path / "parent.py").write_text(PARENT)
    (tmp_path / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}  # not the suite's own run
    env["COVERAGE_FILE"] = str(tmp_path / ".coverage")
    rc = str(ROOT / "pyproject.toml")

    def coverage(*args):
        return subprocess.run([sys.executable, "-m", "coverage", *args, f"--rcfile={rc}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    run = coverage("run", str(tmp_path / "parent.py"), str(tmp_path / "child.py"), str(tmp_path / "ready"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert coverage("combine", "-q").returncode == 0
    assert coverage("json", "-q", "-o", str(tmp_path / "coverage.json")).returncode == 0

    report = json.loads((tmp_path / "coverage.json").read_text())
    executed = set(report["files"]["tds_daemon/oneline.py"]["executed_lines"])
    source = (ROOT / "tds_daemon" / "oneline.py").read_text().splitlines()
    body = {name: next(i for i, line in enumerate(source, 1) if line.startswith(f"def {name}(")) + 2
            for name in ("first_line", "described")}
    assert body["first_line"] in executed, "the SIGTERM'd child's lines are missing"
    assert body["described"] in executed, "the forked grandchild's lines (os._exit) are missing"
    assert report["meta"]["branch_coverage"] is True


def test_summary_counts_lines_and_branches_per_package_and_leaves_the_simulator_apart(capsys, tmp_path):
    def summary(statements, covered, branches, covered_branches):
        return {"summary": {"num_statements": statements, "covered_lines": covered, "num_branches": branches,
                            "covered_branches": covered_branches}}

    report = {"files": {
        "tds_daemon/apply/items.py": summary(100, 90, 20, 10),
        "tds_daemon/simulator/server.py": summary(1000, 0, 100, 0),
        "actors/worker.py": summary(50, 40, 10, 10),
        "supervisor/run.py": summary(50, 50, 0, 0),
        "tds/main.py": summary(0, 0, 0, 0),
        "ops/elsewhere.py": summary(10, 0, 0, 0),
    }}
    path = tmp_path / "coverage.json"
    path.write_text(json.dumps(report))

    assert coverage_summary.main(["coverage_summary.py", str(path)]) == 0
    rows = {line[:24].strip(): line[24:].split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["tds_daemon"] == ["90/100", "90.0%", "10/20", "50.0%", "83.3%"]
    assert rows["tds"] == ["0/0", "-", "0/0", "-", "-"]
    assert rows["TOTAL (no simulator)"] == ["180/200", "90.0%", "20/30", "66.7%", "87.0%"]
    assert rows["simulator (apart)"] == ["0/1000", "0.0%", "0/100", "0.0%", "0.0%"]
