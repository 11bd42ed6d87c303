"""``npistack serve``: the provider API under uvicorn, after checking the store and the address."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from npistack.cli.common import DatabaseOpt, current_settings, out
from npistack.errors import ConfigError

commands = typer.Typer()


@commands.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (NPISTACK_API_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (NPISTACK_API_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Server processes (NPISTACK_API_WORKERS).")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Serve the provider API (contract, CMS-compatible endpoint, admin, health, metrics, /docs)."""
    run_server(host=host, port=port, workers=workers, database_url=database_url)


def _check_can_listen(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will, so a busy port fails here in one line (not after
    "serving ..." and a uvicorn log record)."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as e:
            why = {
                errno.EADDRINUSE: "the port is in use (another server?); pick another with --port",
                errno.EACCES: "permission denied (ports below 1024 need privileges)",
                errno.EADDRNOTAVAIL: "no such address on this machine (--host)",
            }.get(e.errno or 0, e.strerror or str(e))
            raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None


def run_server(
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    database_url: str | None = None,
) -> None:
    import uvicorn

    from npistack.api.server import uvicorn_options
    from npistack.errors import NpistackError
    from npistack.redact import redact_text, redact_url
    from npistack.storage import open_store

    s = current_settings()
    url = database_url or s.resolved_database_url()
    try:
        store = open_store(
            url, read_only=url.startswith("sqlite") or "://" not in url
        )  # fails early, one line
    except NpistackError as e:  # a driver's message may quote the URL, password and all
        raise ConfigError(redact_text(str(e))) from None
    store.close()
    if database_url:
        os.environ["NPISTACK_DATABASE_URL"] = database_url  # for the app factory, here and in workers
        from npistack.settings import get_settings

        get_settings.cache_clear()
        s = current_settings()
    if "NPISTACK_API_TUNE_GC" not in os.environ:  # the collector tuned for serving (settings.md)
        from npistack.settings import get_settings

        os.environ["NPISTACK_API_TUNE_GC"] = "true"  # for the app factory, here and in workers
        get_settings.cache_clear()
    h, p, w = host or s.api_host, port or s.api_port, workers or s.api_workers
    _check_can_listen(h, p)
    out.print(
        f"serving {redact_url(url)} on http://{h}:{p} ({w} worker{'s' if w > 1 else ''}); "
        f"docs at http://{h}:{p}/docs",
        markup=False,
        soft_wrap=True,
    )
    try:
        uvicorn.run(
            "npistack.api.app:create_app", factory=True, host=h, port=p, workers=w, **uvicorn_options(s)
        )
    except OSError as e:
        raise ConfigError(f"cannot listen on {h}:{p}: {e.strerror or e}") from None
    except SystemExit as e:  # uvicorn exits 1 when it cannot bind after all (a race with another server)
        if e.code not in (None, 0):
            raise ConfigError(
                f"cannot listen on {h}:{p}: uvicorn could not start (see the line above)"
            ) from None
        raise
