"""npistack: a self-hosted healthcare provider data platform over the CMS NPPES files."""

__version__ = "0.1.0"
