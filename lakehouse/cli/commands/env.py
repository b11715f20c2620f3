"""``lakehouse env``: shell exports for running dbt (and dbt-ol) by hand against this platform."""

from __future__ import annotations

import argparse
import shlex

from lakehouse.core.config import Settings
from lakehouse.observability.lineage import emit
from lakehouse.stack import metastore
from lakehouse.stack.jars import engine_jars


def run(settings: Settings, args: argparse.Namespace) -> int:
    classpath = ":".join(str(j) for j in engine_jars())
    for name, value in emit.environment(settings).items():
        print(f"export {name}={shlex.quote(value)}")  # for dbt-ol typed by hand
    # the transport above wraps these; left set, a config file would win over it
    print("unset OPENLINEAGE_URL OPENLINEAGE_CONFIG")
    print(f"export LAKEHOUSE_HOME={settings.home}")
    print(f"export LAKEHOUSE_THRIFT_HOST={settings.engine.host}")
    print(f"export LAKEHOUSE_THRIFT_PORT={settings.engine.port}")
    print(f"export LAKEHOUSE_SPARK_CLASSPATH={classpath}")
    for name, value in metastore.session_env(settings).items():  # the `session` target's catalog
        print(f"export {name}={value}")
    return 0
