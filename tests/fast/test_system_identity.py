"""How a lake home's record names a source system: the address without user, password or query,
so the record can say which system filled the home and never holds a credential.
"""

from __future__ import annotations

import pytest

from lakehouse.pipeline import home_record


@pytest.mark.parametrize(
    ("address", "kind", "identity"),
    [
        ("postgresql+psycopg2://loader:pa/s#s@db.corp:5439/web?sslmode=require", "sqlalchemy",
         "postgresql://db.corp:5439/web"),
        # pragma: allowlist nextline secret
        ("snowflake://loader:s3cret@acme-prod/raw/sales?warehouse=load", "sqlalchemy",
         "snowflake://acme-prod/raw/sales"),
        # pragma: allowlist nextline secret
        ("https://svc:t0ken@crm.example.com:8443/api/v2/?key=k3y", "url",
         "https://crm.example.com:8443/api/v2"),
        (" b1.corp:9092,b0.corp:9092", "brokers", "b0.corp:9092,b1.corp:9092"),
    ],
)  # fmt: skip
def test_a_system_is_identified_without_credentials(address: str, kind: str, identity: str) -> None:
    assert home_record.identify(address, kind) == identity
