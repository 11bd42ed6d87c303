"""The HTTP API (FastAPI). ``create_app`` builds it; ``npistack serve`` runs it."""

from npistack.api.app import create_app

__all__ = ["create_app"]
