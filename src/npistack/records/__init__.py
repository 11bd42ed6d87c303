"""The data model, pure and without I/O: what a provider is made of, in named rows.

Below ingest, storage and services; it imports only ``normalize`` and ``nppes`` (both pure) and the
standard library.

- ``rows``: the named row types of the store's data tables (``ProviderRow``, ``NameRow``,
  ``TaxonomyRow``, ``LocationRow``, ``ExtraRow``), a quarantined line, and ``BlockResult``, what one
  block of a data file becomes.
- ``keys``: the derived keys rows are searched by (license key, postal key, geo cell).
- ``values``: how published text becomes stored values (dates, ``<UNAVAIL>``, compact objects).
- ``npidata``: npidata, pl, othername and endpoint rows → provider documents and index rows, and
  ``transform_block`` (every line of a block loaded or quarantined, exactly once).
- ``registry``: a CMS NPI Registry API (v2.1) result → the same document and rows.
- ``index``: a stored document → its index rows again, and ``rows_change`` (which tables differ).
- ``diff``: what changed between two versions of a provider (the change feed's diff).
"""
