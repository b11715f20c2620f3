"""One manifest of every model for dbt-score, from the per-target manifests `dbt parse` writes.

A target enables only its own models (dbt_project.yml: silver and gold on spark, publish/snowflake
on snowflake, publish/redshift on redshift/postgres), so no single parse holds them all. The
first manifest is taken whole; the others add the nodes, exposures and unit tests it lacks (their
publish models and the tests on them), so the project's macros and sources are scored once.

Usage: python merge_manifests.py OUT FIRST [MORE...]
"""

import json
import sys
from pathlib import Path


def merge(paths: list[Path]) -> dict:
    manifests = [json.loads(path.read_text()) for path in paths]
    merged = manifests[0]
    for other in manifests[1:]:
        for section in ("nodes", "exposures", "unit_tests"):
            for key, value in other.get(section, {}).items():
                merged.setdefault(section, {}).setdefault(key, value)
        for section in ("parent_map", "child_map"):
            for key, value in (other.get(section) or {}).items():
                known = merged.setdefault(section, {}).setdefault(key, [])
                known.extend(v for v in value if v not in known)
    return merged


if __name__ == "__main__":
    out, *inputs = sys.argv[1:]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(merge([Path(p) for p in inputs])))
