"""Regenerate docs/cli.md from the real `npistack ... --help` output (tests/test_docs.py checks it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMMANDS = [
    "",
    "ingest",
    "synth",
    "stats",
    "show",
    "loads",
    "quarantine",
    "settings",
    "demo",
    "serve",
    "keys",
    "keys create",
    "keys list",
    "keys suspend",
    "keys resume",
    "keys revoke",
    "keys set-plan",
    "keys usage",
    "plans",
    "plans list",
    "plans set",
    "history",
    "changes",
    "enrich",
    "sync",
    "webhooks",
    "webhooks create",
    "webhooks list",
    "webhooks show",
    "webhooks update",
    "webhooks delete",
    "webhooks deliveries",
    "webhooks replay",
    "worker",
    "match",
    "match-eval",
]


def help_text(cmd: str) -> str:
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb")
    args = [sys.executable, "-m", "npistack.cli", *cmd.split(), "--help"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return "\n".join(line.rstrip() for line in out.strip("\n").splitlines()).strip("\n")


def main() -> None:
    parts = [
        "# Command line\n",
        "Generated from the real `--help` output by `scripts/gen_cli_docs.py`.\n",
        "Every error is one line on stderr (`error: ...`) with exit code 1; `NPISTACK_DEBUG=1` shows a "
        "traceback instead.\n",
    ]
    for cmd in COMMANDS:
        parts.append(f"## npistack {cmd}".rstrip() + "\n")
        parts.append("```\n" + help_text(cmd) + "\n```\n")
    Path(__file__).parent.parent.joinpath("docs", "cli.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
