"""No credential is committed: every file git would commit is scanned (lakehouse/secrets_scan)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lakehouse.cli import secrets_scan
from lakehouse.core.config import REPO_ROOT


def test_the_repository_holds_no_secret() -> None:
    files = secrets_scan.repository_files(REPO_ROOT)
    assert len(files) > 100  # the whole repository, not an empty listing
    findings = secrets_scan.scan(files, REPO_ROOT)
    assert not findings, "credentials in the repository:\n" + "\n".join(map(str, findings))


# Fake credentials of each shape, assembled at run time so this file holds none of them.
PLANTED = {
    "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
    "AWS access key id": "aws_access_key_id = " + "AKIA" + "Q" * 16,
    "GitHub token": "token: gh" + "p_" + "a1B2" * 9,
    "Slack token": "SLACK=" + "xo" + "xb-1234567890-abcdef",
    "password in a URL": "url = 'postgresql://loader:" + "hunter2" + "@db.example.com/raw'",
    "secret literal": 'api_key = "' + "9f8e7d6c5b4a" + '"',
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_each_kind_of_secret_is_found(kind: str, tmp_path: Path) -> None:
    """The scan fails on a planted secret of every kind, in a file git has not seen yet."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    leak = tmp_path / "settings.py"
    leak.write_text(f"# configuration\n{PLANTED[kind]}\n")
    findings = secrets_scan.scan(secrets_scan.repository_files(tmp_path), tmp_path)
    assert [(f.path, f.line, f.kind) for f in findings] == [("settings.py", 2, kind)]
    # the report never prints the secret itself
    assert "hunter2" not in str(findings[0]) and "9f8e7d6c5b4a" not in str(findings[0])


def test_values_from_the_environment_and_templates_pass() -> None:
    text = "\n".join([
        "password: \"{{ env_var('SNOWFLAKE_PASSWORD') }}\"",
        'token = os.environ["CRM_API_TOKEN"]',
        "password: \"{{ env_var('REDSHIFT_PASSWORD', 'lakehouse') }}\"",
        'url = f"postgresql+psycopg2://{ROLE}:{quote(password)}@{HOST}:{port}/{database}"',
        # the name of the variable a secret is read from is not the secret
        'location={"base_url": "CRM_BASE_URL", "token": "CRM_API_TOKEN"}',
    ])  # fmt: skip
    assert secrets_scan.scan_text(text) == []
    # ... but a literal that only looks like a shout is still one
    shouted = 'token = "' + "HUNTER2" + "HUNTER" + '"'  # assembled: this file holds none
    assert [f.kind for f in secrets_scan.scan_text(shouted)] == ["secret literal"]
