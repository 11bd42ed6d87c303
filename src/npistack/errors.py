"""The one exception tree of npistack.

::

    NpistackError                 every error we raise on purpose; its message is one clear line
    ├── ConfigError               a setting or URL that cannot be used
    ├── SourceError               a bundle/file that cannot be opened or recognised
    │   └── LayoutError           a data file whose header is not a known NPPES layout
    ├── StoreError                the database cannot do what was asked
    │   └── StoreNotReady         no data loaded yet / schema missing
    └── LoadError                 a load that cannot proceed (e.g. another load is running)
"""

from __future__ import annotations


class NpistackError(Exception):
    """Base of every error npistack raises on purpose; ``str(err)`` is a one-line message."""


class ConfigError(NpistackError):
    """A setting or a URL that cannot be used."""


class SourceError(NpistackError):
    """A bundle, folder or file that cannot be opened or recognised."""


class LayoutError(SourceError):
    """A data file whose header is not a known NPPES layout."""


class StoreError(NpistackError):
    """The store cannot do what was asked."""


class StoreNotReady(StoreError):
    """The store has no data loaded yet."""


class LoadError(NpistackError):
    """A load that cannot proceed."""
