"""The salt that personal data is hashed with, and the hash itself (docs/governance.md).

Personal data leaves bronze only as ``sha2(concat(salt, value), 256)`` (dbt macro ``pii``):
deterministic, so silver and gold still join, count and de-duplicate on it; salted, so nobody
can hash a list of known emails and look them up. The salt is a secret and never appears in SQL
text: the engine process has it in its environment (``engine.launch``) and the SQL reads it while
the query runs (``java_method('java.lang.System', 'getenv', ...)``). So it stays out of dbt's
compiled SQL, logs and manifest, the OpenLineage events that carry that SQL, and Spark's plans and
error messages (a literal, or Spark's ``${env:...}`` substitution, would print it in those).

Where the salt comes from: ``LAKEHOUSE_PII_SALT`` when set (production: from the secret
manager); otherwise a random salt generated once per lake and kept beside it in
``<home>/state/secrets/pii_salt`` (mode 0600), so a local lake's hashes stay stable across runs.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from lakehouse.core.config import Settings

SALT_ENV = "LAKEHOUSE_PII_SALT"
MIN_SALT_CHARS = 16


class SaltError(RuntimeError):
    """The configured salt is unusable (too short to resist a dictionary)."""


def salt_file(settings: Settings) -> Path:
    return settings.state_dir / "secrets" / "pii_salt"


def salt(settings: Settings) -> str:
    """The lake's PII salt: from the environment, else this lake's generated one."""
    if value := os.environ.get(SALT_ENV):
        if len(value) < MIN_SALT_CHARS:
            raise SaltError(f"{SALT_ENV} must be at least {MIN_SALT_CHARS} characters")
        return value
    path = salt_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        # O_EXCL: two processes starting at once cannot each write a different salt.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


def digest(value: str, salt_value: str) -> str:
    """The masked form of ``value``, exactly as the dbt macro ``pii`` computes it in Spark."""
    return hashlib.sha256((salt_value + value).encode("utf-8")).hexdigest()
