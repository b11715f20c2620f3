"""The sources the platform loads, in load order: the one list every layer above reads."""

from __future__ import annotations

SOURCES = ("snowflake", "crm", "redshift", "fx", "kafka")
