"""dbt's Jinja context as far as sqlfluff's jinja templater needs it to render this project.

sqlfluff renders the models without dbt (its dbt templater compiles through the adapter, which
connects to the engine for models such as customer_360: not offline, and ~1 s a file). Its
built-in dbt stand-ins lack `return` and give every `var()` the string "item"; the macros
iterate the project's real vars (country_names, date_formats...), so `var` reads them from
dbt_project.yml. `.sqlfluff` points `library_path` here; names defined here join the context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_PROJECT_VARS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "dbt_project.yml").read_text()
)["vars"]


def var(name: str, default: Any = None) -> Any:
    """The project's var as dbt_project.yml declares it, else the caller's default."""
    return _PROJECT_VARS.get(name, default)


def _return(value: Any) -> Any:
    """dbt's `return()`: a macro's value as is (rendered in place by `{{ }}`)."""
    return value


def env_var(name: str, default: str = "") -> str:
    """The default: linting must not depend on the shell it runs in."""
    return default


def fromjson(text: str, default: Any = None) -> Any:
    import json

    return json.loads(text) if text else default


# `return` is a Python keyword: bound by name.
globals()["return"] = _return
# Macros that query the warehouse skip that part at parse time (`if execute`), as here.
execute = False
