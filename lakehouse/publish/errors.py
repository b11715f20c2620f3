"""The one error a publish raises: which warehouse, table and step failed, and why."""

from __future__ import annotations


class PublishError(RuntimeError):
    """A publish step failed; the message says which warehouse, table and step."""
