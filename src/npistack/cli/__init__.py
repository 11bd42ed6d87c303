"""The ``npistack`` command line: a thin layer over ingest, storage and services.

``npistack.cli.app`` holds the Typer app and ``main``; ``npistack.cli.common`` what the commands
share (consoles, progress bars, settings, store); one module per command group holds its commands.
This package's face is ``main``, the console script's entry point (``npistack.cli:main``), which
imports the app only when it runs.
"""

from __future__ import annotations


def main() -> None:
    """Console entry point (``npistack``): ``npistack.cli.app.main``, imported now."""
    from npistack.cli.app import main as run

    run()


__all__ = ["main"]
