"""The one exception tree of npistack: every exception class in the package is in it, and drawn
here (``tests/test_architecture.py`` checks both).

::

    NpistackError                   every error we raise on purpose; its message is one clear line
    ├── ConfigError                 a setting or URL that cannot be used
    ├── SourceError                 a bundle/file that cannot be opened or recognised
    │   ├── LayoutError             a data file whose header is not a known NPPES layout
    │   └── FetchRefused            (ingest.sync) a request, redirect or response a sync refuses
    ├── StoreError                  the database cannot do what was asked
    │   └── StoreNotReady           no data loaded yet / schema missing
    ├── LoadError                   a load that cannot proceed (e.g. another load is running)
    ├── Unavailable                 a service npistack needs (the meter, Redis) is down or too slow now
    ├── BadRow                      (records.values; also a ValueError) a row that cannot be used:
    │                               its message is the quarantine reason
    ├── FilterError                 (storage.changes; also a ValueError) a change-feed filter value
    ├── WebhookError                (storage.webhooks) a subscription or delivery request refused
    ├── AccountError                (services.accounts) a key or plan operation that cannot be done
    ├── UpstreamError               (services.upstream) the upstream registry failed or answered junk
    │   └── UpstreamBusy            no upstream slot or rate token came free in time
    ├── MatchInputError             (services.match.input; also a ValueError) a record to match
    ├── EnrichError                 (services.enrich.input) a CSV to enrich that cannot be read
    ├── EnrichCancelled             (services.enrich.file) an enrichment job cancelled by its owner
    ├── ApiError                    (api.errors) a request answered with the documented error body
    ├── OutboundError               (outbound) a URL npistack may not send to (webhooks, sync)
    │   ├── Refused                 resolves to a loopback, private, link-local or metadata address
    │   └── Unresolved              does not resolve
    └── private signals, raised and caught inside their own module, never escaping it:
        _Transient (ingest.source), _Unsupported (normalize.phone),
        _Runaway and _TooLong (services.enrich.input)
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


class Unavailable(NpistackError):
    """A service npistack needs (the usage meter, Redis, a database) is down or too slow right now.

    The API answers it with 503 ``service_unavailable`` and ``Retry-After: retry_after_s``.
    """

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
