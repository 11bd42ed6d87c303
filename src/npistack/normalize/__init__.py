"""Normalization shared by ingest, matching and verification: addresses, phones, ZIP geodata, names."""
