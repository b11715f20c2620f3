"""``lakehouse dbt <args>``: dbt on the project, as the platform calls it (dbt-ol for builds)."""

from __future__ import annotations

import argparse
import os

from lakehouse.core.config import Settings
from lakehouse.stack import metastore
from lakehouse.stack.jars import engine_jars
from lakehouse.transform import dbt_cli


def run(settings: Settings, args: argparse.Namespace) -> int:
    # The `session` target runs Spark inside dbt, on the engine's catalog: it needs the jars
    # and the metastore's address (profiles/profiles.yml); the other targets ignore them.
    os.environ.setdefault("LAKEHOUSE_SPARK_CLASSPATH", ":".join(str(j) for j in engine_jars()))
    for name, value in metastore.session_env(settings).items():
        os.environ.setdefault(name, value)
    return dbt_cli.dbt(settings, *args.args, check=False).returncode
