"""npistack's settings: environment variables with the ``NPISTACK_`` prefix (or a ``.env`` file).

Every field carries a description; ``npistack settings`` prints them and docs/settings.md lists them
(a test keeps the two in step).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/npistack`` (``~/.local/share/npistack``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "npistack"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NPISTACK_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="",
        description=(
            "Where the provider store lives: 'sqlite:///PATH' (the embedded default) or "
            "'postgresql://user@host:port/db'. Empty means sqlite at DATA_DIR/npistack.db."
        ),
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for the default SQLite store, downloads and demo bundles.",
    )
    nucc_csv: str = Field(
        default="",
        description="Path of a NUCC taxonomy CSV to use instead of the shipped v25.1 release.",
    )
    ingest_workers: int = Field(
        default=0,
        description="Processes that parse and transform rows during ingest; 0 means one per CPU core.",
    )
    ingest_block_bytes: int = Field(
        default=1 << 20,
        ge=4096,
        description="Bytes of a data file handed to a transform worker at a time (its rows are committed together).",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'npistack.db'}"


@cache
def get_settings() -> Settings:
    return Settings()
