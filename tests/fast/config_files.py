"""A copy of the shipped lakehouse.yml with one change, for the configuration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lakehouse.core.config import DEFAULT_CONFIG_FILE


def write_config(tmp_path: Path, mutate: Callable[[dict[str, Any]], object]) -> Path:
    """``lakehouse.yml`` as shipped, changed by ``mutate``, written under ``tmp_path``."""
    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    mutate(raw)
    path = tmp_path / "lakehouse.yml"
    path.write_text(yaml.safe_dump(raw))
    return path
