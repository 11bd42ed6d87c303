"""Background workers: webhook deliveries (``npistack worker``)."""

from __future__ import annotations

from npistack.worker.deliveries import DeliveryWorker

__all__ = ["DeliveryWorker"]
