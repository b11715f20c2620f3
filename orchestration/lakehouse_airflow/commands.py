"""Platform commands as tasks: a ``BashOperator`` per command, with the lineage parent in ``env``.

The platform lives in the other environment (``.venv``), so a task runs its executable
(``lakehouse ...``, ``dbt ...``). ``env`` adds two variables, rendered per task instance, to the
task's own environment (``append_env``): ``OPENLINEAGE_PARENT_ID``, the task's OpenLineage run (the
provider's ``lineage_parent_id`` macro), so the runs the command emits (its dlt loads, its
publish) become children of the task's run in the lineage graph; and ``LAKEHOUSE_RUN_ID``, the
DAG run under which the command records its jobs in ``ops.run_metrics``
(lakehouse/observability/run_metrics.py).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook, SubprocessResult
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException


def lineage_parent_id(task_instance: Any) -> str:
    """The OpenLineage provider's macro of that name. Imported when a task renders its env, not
    when a DAG file is parsed: the provider's client costs ~1.2 s of imports (docs/performance.md).
    (The provider's plugin offers it as ``macros.OpenLineageProviderPlugin.lineage_parent_id``
    only while OpenLineage is enabled; without it every command task would fail to render.)"""
    from airflow.providers.openlineage.plugins.macros import lineage_parent_id as parent_id

    return parent_id(task_instance)


# A DAG's ``user_defined_macros``: the macro the env renders.
MACROS = {"lineage_parent_id": lineage_parent_id}
LINEAGE_ENV = {
    "OPENLINEAGE_PARENT_ID": "{{ lineage_parent_id(task_instance) }}",
    "LAKEHOUSE_RUN_ID": "{{ dag.dag_id }}/{{ run_id }}",
}


def command(*argv: str | Path) -> str:
    """One shell-quoted command line."""
    return shlex.join(map(str, argv))


class _LastLineHook(SubprocessHook):
    """Keeps the command's result: BashOperator drops its output when the command fails."""

    result: SubprocessResult | None = None

    def run_command(self, *args: Any, **kwargs: Any) -> SubprocessResult:
        self.result = super().run_command(*args, **kwargs)
        return self.result


class PlatformCommand(BashOperator):
    """A platform command: its output streams to the task log; a non-zero exit fails the task
    with the command's last output line (a breach, an exception), so the alert says what went
    wrong. It pushes no XCom: nothing reads a command's output."""

    def __init__(self, *, bash_command: str, **kwargs: Any) -> None:
        kwargs.setdefault("env", LINEAGE_ENV)
        kwargs.setdefault("append_env", True)
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(bash_command=bash_command, **kwargs)

    @cached_property
    def subprocess_hook(self) -> SubprocessHook:
        return _LastLineHook()

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowSkipException:
            raise
        except AirflowException as exc:
            result = getattr(self.subprocess_hook, "result", None)
            if result is None or result.exit_code == 0:
                raise  # not the command's failure (a missing cwd, say)
            raise AirflowException(
                f"`{self.bash_command}` exited {result.exit_code}: {result.output}"
            ) from exc


def commands(*lines: Sequence[str | Path]) -> str:
    """Several commands, each run only if the one before succeeded."""
    return " && ".join(command(*argv) for argv in lines)
