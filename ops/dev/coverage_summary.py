"""`make coverage`'s summary: line and branch coverage per package and in total, read from ``coverage json``.

The Zoho simulator (``tds_daemon/simulator``) is Zoho's stand-in, not the daemon: it is left out of the
total and shown on a line of its own.

    python ops/dev/coverage_summary.py coverage.json
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

PACKAGES = ("tds_daemon", "actors", "supervisor", "tds")
SIMULATOR = "tds_daemon/simulator/"
FIELDS = ("num_statements", "covered_lines", "num_branches", "covered_branches")


def group_of(path: str) -> str | None:
    """The row a measured file counts in: its package, ``simulator``, or None for a file outside them."""
    path = path.replace("\\", "/")
    if path.startswith(SIMULATOR):
        return "simulator"
    top = path.split("/", 1)[0]
    return top if top in PACKAGES else None


def totals(report: dict) -> dict[str, Counter]:
    """Statement and branch counts per package, plus ``total`` (every package, the simulator not)."""
    groups: dict[str, Counter] = {name: Counter() for name in (*PACKAGES, "total", "simulator")}
    for path, data in report["files"].items():
        group = group_of(path)
        if group is None:
            continue
        counts = Counter({f: data["summary"][f] for f in FIELDS})
        groups[group].update(counts)
        if group != "simulator":
            groups["total"].update(counts)
    return groups


def pct(covered: int, of: int) -> str:
    return f"{100 * covered / of:5.1f}%" if of else "    -"


def render(groups: dict[str, Counter]) -> str:
    rows = [f"{'':<24}{'lines':>22}{'branches':>20}{'line+branch':>14}"]
    for name in (*PACKAGES, "total", "simulator"):
        c = groups[name]
        label = {"total": "TOTAL (no simulator)", "simulator": "simulator (apart)"}.get(name, name)
        lines = f"{c['covered_lines']}/{c['num_statements']} {pct(c['covered_lines'], c['num_statements'])}"
        branches = f"{c['covered_branches']}/{c['num_branches']} {pct(c['covered_branches'], c['num_branches'])}"
        both = pct(c["covered_lines"] + c["covered_branches"], c["num_statements"] + c["num_branches"])
        rows.append(f"{label:<24}{lines:>22}{branches:>20}{both:>14}")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "coverage.json")
    print(render(totals(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
