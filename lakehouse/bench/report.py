"""The bench's output: the printed table, and the JSON document kept under the lake home.

Pure functions over the measurements (no engine, no clock), so their shape is unit-tested.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from lakehouse.bench.targets import Verdict, limit_text, show
from lakehouse.core.config import REPO_ROOT


@dataclass(frozen=True)
class Line:
    """One measured value under a section of the table; ``note`` replaces a missing value.

    ``beside`` is the same measurement in a second configuration (the mode column: the
    section's title names both), printed in a column of its own with their ratio.
    """

    label: str
    value: float | None
    unit: str = "s"
    note: str = ""
    beside: float | None = None


Sections = dict[str, list[Line]]


def table(sections: Sections, verdicts: list[Verdict], facts: dict[str, Any]) -> str:
    """The measurements by section, then every target with its value, limit and outcome."""
    width = max([len(line.label) + 2 for lines in sections.values() for line in lines]
                + [len(v.target.what) for v in verdicts] + [40])  # fmt: skip
    out = [
        f"make bench: scale {facts['scale']}, git {facts['git_sha'][:10]}"
        f"{' (dirty)' if facts['git_dirty'] else ''}, {facts['cores']} cores, "
        f"{facts['ram_gib']:.1f} GiB, load {facts['load_before']} -> {facts['load_after']}",
        "",
    ]
    for section, lines in sections.items():
        out.append(section)
        for line in lines:
            value = line.note if line.value is None else show(line.value, line.unit)
            row = f"  {line.label:<{width - 2}}  {value:>14}"
            if line.beside is not None:
                row += f"  {show(line.beside, line.unit):>14}"
                if line.value:
                    row += f"  {line.beside / line.value:>6.2f}x"
            out.append(row)
    scale = facts["scale"]
    scale_note = "" if scale == 1 else f" (limits are for scale 1; this run: {scale})"
    out += ["", f"targets{scale_note}", f"  {'target':<{width - 2}}  {'measured':>14}  "
            f"{'limit':>10}  result"]  # fmt: skip
    for v in verdicts:
        out.append(f"  {v.target.what:<{width - 2}}  {show(v.value, v.target.unit):>14}  "
                   f"{limit_text(v.target):>10}  {v.outcome}")  # fmt: skip
    return "\n".join(out)


def document(
    sections: Sections, verdicts: list[Verdict], facts: dict[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    """What the JSON file holds: machine facts, every measurement, every verdict, the details
    (dbt's own per-node numbers, raw samples) a reader needs to see where time went."""
    return {
        "facts": facts,
        "measurements": {s: [asdict(line) for line in lines] for s, lines in sections.items()},
        "targets": [
            {
                "key": v.target.key,
                "what": v.target.what,
                "value": v.value,
                "unit": v.target.unit,
                "limit": v.target.limit,
                "at_least": v.target.at_least,
                "outcome": v.outcome,
            }
            for v in verdicts
        ],
        "details": details,
    }


def write(doc: dict[str, Any], out_dir: Path) -> Path:
    """``bench-<started>.json`` and ``latest.json`` in ``out_dir``; returns the first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = re.sub(r"[^0-9T]", "", doc["facts"]["started_at"])[:15]
    path = out_dir / f"bench-{stamp}.json"
    text = json.dumps(doc, indent=2, default=str) + "\n"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def _output(*cmd: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_facts(scale: float) -> dict[str, Any]:
    """Where and on what the numbers were taken: a number without these is not comparable."""
    java = _output("java", "-version").splitlines()
    return {
        "scale": scale,
        "git_sha": _output("git", "rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(_output("git", "status", "--porcelain")),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "java": java[0] if java else "unknown",
        "spark": _version("pyspark"),
        "dbt_core": _version("dbt-core"),
        "dbt_spark": _version("dbt-spark"),
        "dlt": _version("dlt"),
        "deltalake": _version("deltalake"),
        "load_before": load_average(),
    }
