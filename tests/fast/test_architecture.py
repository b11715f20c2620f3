"""The layers of the code and the one rule between them (docs/architecture.md).

A module imports only from its own layer or the layers below: core < ingestion < observability <
transform < stack < publish < pipeline < cli / bench. import-linter checks the rule over every
import, a function's included; these tests run it, check every module is in a layer, and that
the command line's cheap commands stay cheap.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lakehouse.core.config import REPO_ROOT

PACKAGES = ("lakehouse", "ingestion")


def _layers() -> list[str]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in contract["layers"] for m in layer.split("|")]


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def test_imports_point_downward_only() -> None:
    result = subprocess.run([Path(sys.executable).parent / "lint-imports", "--no-cache"],
                            cwd=REPO_ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Layers import downward only KEPT" in result.stdout


def test_every_module_belongs_to_a_layer() -> None:
    layers = _layers()
    entry_points = {"lakehouse", "lakehouse.__main__"}
    homeless = [
        name for name, _ in _modules()
        if name not in entry_points
        and not any(name == layer or name.startswith(layer + ".") for layer in layers)
    ]  # fmt: skip
    assert not homeless, f"modules in no layer of pyproject.toml's contract: {homeless}"


def test_no_module_imports_the_project_inside_a_function() -> None:
    """An import inside a function hides a dependency from a reader (and often a cycle)."""
    nested = []
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                target = (inner.module or "") if isinstance(inner, ast.ImportFrom) else (
                    inner.names[0].name if isinstance(inner, ast.Import) else "")  # fmt: skip
                if target.split(".")[0] in PACKAGES:
                    nested.append(f"{name}.{node.name}: import {target}")
    assert not nested, nested


@pytest.mark.parametrize("argv", [["--help"], ["status"]], ids=["help", "status"])
def test_cheap_commands_import_neither_dlt_nor_the_kafka_client(argv, tmp_path) -> None:
    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_THRIFT_PORT": "1"}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "lakehouse", *argv],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-3000:]  # status: 1 = engine down
    assert "lakehouse" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "lakehouse.cli.main" in imported  # importtime did report
    heavy = sorted(m for m in imported if m.split(".")[0] in ("dlt", "confluent_kafka"))
    assert not heavy, f"lakehouse {' '.join(argv)} imported {heavy[:10]}"
