"""A scan of the repository for credentials that must never be committed.

Secrets reach the platform only from the environment (profiles.yml's ``env_var``, the
``*_PASSWORD`` / ``*_TOKEN`` variables, dlt's secret providers); a key, token or password
written into a file is a leak. ``tests/fast/test_secrets.py`` runs this over every file git would
commit, so a leak fails ``make test``.

Patterns look for the shapes real credentials have (key headers, cloud and chat tokens, a
password inside a URL, a quoted literal assigned to a password/secret/token/key name) and skip
what reads from the environment or a template. Values the local stand-ins accept by design
(they guard nothing) are allowed by name in ``ALLOWED``, each with its reason.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "password in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"{}$]+:([^@\s/'\"{}$]{3,})@"),
    "secret literal": re.compile(
        r"(?i)\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key)[\w-]*"
        r"[\"']?\s*[:=]\s*[\"']([^\"'\s{}$<>]{8,})[\"']"
    ),
}

# Values that look like secrets but protect nothing: the local stand-ins accept them by design.
ALLOWED: dict[str, str] = {
    "any-password-the-emulator-accepts": "fakesnow (local Snowflake emulator) accepts any login",
    "fakesnow": "fakesnow accepts any login (lakehouse/stack/services/snowflake.py)",
    "lakehouse": "role password of the local PostgreSQL stand-in, on 127.0.0.1 only",
    "local-crm-token": "bearer token of the local CRM stand-in (lakehouse/stack/http_standin.py)",
    "not-used": "placeholder credentials of tests that only compile SQL",
}
# A line that holds a fake credential on purpose (a test of redaction) says so with this marker,
# or the line before it with NEXTLINE: the conventions of detect-secrets.
PRAGMA = "pragma: allowlist secret"
NEXTLINE = "pragma: allowlist nextline secret"

# A literal that is an environment variable's name (``"token": "CRM_API_TOKEN"``) says where a
# secret comes from; it is not one.
VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")

# Binary or generated files git tracks that cannot hold a typed secret.
SKIPPED_SUFFIXES = (".lock", ".png", ".jar", ".whl", ".parquet")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.excerpt}"


def repository_files(root: Path) -> list[Path]:
    """Every file git would commit: tracked, plus new files not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [root / p for p in out.stdout.split("\0") if p and (root / p).is_file()]


def _redact(line: str, secret: str) -> str:
    shown = secret[:3] + "…" if len(secret) > 3 else "…"
    return line.strip().replace(secret, shown)[:160]


def scan_text(text: str, path: str = "<text>") -> list[Finding]:
    findings = []
    previous = ""
    for number, line in enumerate(text.splitlines(), 1):
        allowed = PRAGMA in line or NEXTLINE in previous
        previous = line
        if allowed:
            continue
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(line):
                value = match.group(1) if pattern.groups else match.group(0)
                if (value in ALLOWED or VARIABLE_NAME.fullmatch(value)
                        or "env_var" in line or "environ" in line):  # fmt: skip
                    continue
                findings.append(Finding(path, number, kind, _redact(line, value)))
    return findings


def scan(paths: Iterable[Path], root: Path) -> list[Finding]:
    findings = []
    for path in paths:
        if path.suffix in SKIPPED_SUFFIXES:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        findings += scan_text(text, str(path.relative_to(root)))
    return findings
