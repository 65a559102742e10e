"""Regenerate the configuration reference in README.md and ops/tds.example.toml from the schema.

    .venv/bin/python ops/dev/config_reference.py

tests/test_config.py fails when either is out of date.
"""

from __future__ import annotations

import re
from pathlib import Path

from tds_daemon.settings import SCHEMA, SECTIONS, reference_table

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


EXAMPLE_SUBSCRIBER = [
    "# [[events.subscribers]]",
    '# url = "https://erp.example.com/hooks/tds"',
    '# secret = "whsec_..."',
    '# types = ["tds.zoho.entity.synced"]',
    '# entities = ["invoice", "payment"]',
    '# name = "erp"',
]


def example_toml() -> str:
    lines = ["# TDS configuration: copy to /etc/tds/tds.toml. Every key is optional; shown are the defaults.",
             "# Any key can be overridden by the environment as TDS_<SECTION>_<KEY>: prefer that (or a",
             "# root-only file) for the secrets. Check a file with: tds check-config --config PATH", ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for s in SCHEMA:
            if s.section != section:
                continue
            lines.append(f"# {s.doc}")
            if s.kind is list:
                lines += EXAMPLE_SUBSCRIBER
            elif s.default == "":
                lines.append(f'# {s.key} = ""')
            elif isinstance(s.default, bool):  # TOML spells them true/false, Python True/False
                lines.append(f"{s.key} = {str(s.default).lower()}")
            else:
                lines.append(f'{s.key} = "{s.default}"' if isinstance(s.default, str) else f"{s.key} = {s.default}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"{START}\n{reference_table()}\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    readme.write_text(text)
    (ROOT / "ops" / "tds.example.toml").write_text(example_toml())


if __name__ == "__main__":
    main()
