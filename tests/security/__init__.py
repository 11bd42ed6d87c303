"""Hardening tests (issue 14): each numbered item of the hardening issue reproduced and shown fixed."""
