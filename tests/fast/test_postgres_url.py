"""The local PostgreSQL's URL: a password with URL-special characters survives the quoting."""

from __future__ import annotations

from lakehouse.stack.services import postgres


def test_url_quotes_the_password() -> None:
    password = "p@ss/word"  # pragma: allowlist secret
    assert postgres.url(6543, "raw", password=password) == (
        # pragma: allowlist nextline secret
        "postgresql+psycopg2://lakehouse:p%40ss%2Fword@127.0.0.1:6543/raw"
    )
