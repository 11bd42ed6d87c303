"""Docs cannot drift: every setting is documented, and every command and option appears in docs/cli.md."""

from __future__ import annotations

import re
from pathlib import Path

from npistack.cli.app import app
from npistack.settings import Settings

DOCS = Path(__file__).parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"`NPISTACK_{name.upper()}`" in text, f"NPISTACK_{name.upper()} missing from docs/settings.md"
        assert field.description in text, f"docs/settings.md describes NPISTACK_{name.upper()} differently"
    documented = set(re.findall(r"`NPISTACK_([A-Z_]+)`", text)) - {
        "DEBUG",
        "TEST_POSTGRES_URL",
        "TEST_REDIS_URL",
    }
    assert documented == {n.upper() for n in Settings.model_fields}


def test_every_command_and_option_is_documented() -> None:
    import typer.main

    text = (DOCS / "cli.md").read_text()
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        assert f"npistack {name}" in text, f"command {name} missing from docs/cli.md"
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in text, f"{name} {opt} missing from docs/cli.md"
