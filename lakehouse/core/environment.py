"""A block of code with some environment variables set, and the previous values put back after.

Why the environment and not arguments: the clients read their settings there (dlt's HTTP client
its retry policy, pydantic-settings and every child process the platform's variables), so a
scoped override is how one caller changes them without touching the next one's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def overridden(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` inside the block; each variable as it was afterwards (unset
    again if it was unset)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
