"""CRM accounts and contacts from a paged REST API, loaded incrementally on ``updated_at``.

Strategy: dlt's ``rest_api`` source sends the watermark kept in dlt state as ``updated_since``,
so a run fetches only records changed since the last one; records are merged (upsert) on their
key, so a changed record is updated in place. The watermark trails by ``LATE_UPDATE_LAG`` because
CRMs stamp some updates late (out of order); re-reading that window is safe under the merge.

The contract guard is the first step of each resource's pipe, before dlt's incremental reads the
``updated_at`` cursor: a record whose cursor is garbage, or that is no object at all (null, a
list, a number inside the ``data`` array), is quarantined with its page and index, never compared.

Configuration: dlt injects ``base_url`` from ``SOURCES__CRM__BASE_URL`` and the bearer ``token``
from ``SOURCES__CRM__TOKEN`` (a secret; or ``[sources.crm]`` in ``.dlt/config.toml`` and
``secrets.toml``); ingestion/locations.py also honours ``CRM_BASE_URL`` and ``CRM_API_TOKEN``.
``crm_source`` is not a ``@dlt.source`` (it returns dlt's ``rest_api_source``), so it takes
them through dlt's ``with_config`` on the same section.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.configuration import with_config
from dlt.sources.rest_api import rest_api_source
from requests import Response

from ingestion.contracts import GuardStats, TableContract, attach_guard, dlt_schema_contract
from ingestion.spec import Backfill, LoadRequest, SourceSpec
from lakehouse.core import naming
from lakehouse.core.config import CrmSourceConfig, SchemaPolicy

LATE_UPDATE_LAG = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ENDPOINT = "crm/v1/{table}"  # relative to the API base URL

CONTACTS = TableContract(
    name="contacts",
    columns={
        "contact_id": {"data_type": "text", "nullable": False},
        "customer_id": {"data_type": "bigint"},
        "account_id": {"data_type": "bigint"},
        "email": {"data_type": "text"},
        "owner": {"data_type": "text"},
        "segment": {"data_type": "text"},
        "lifecycle_stage": {"data_type": "text"},
        "updated_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
    },
    required=("contact_id", "updated_at"),
    cursor="updated_at",
)

ACCOUNTS = TableContract(
    name="accounts",
    columns={
        "account_id": {"data_type": "bigint", "nullable": False},
        "name": {"data_type": "text"},
        "segment": {"data_type": "text"},
        "owner": {"data_type": "text"},
        "country": {"data_type": "text"},
        "updated_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
    },
    required=("account_id", "updated_at"),
    cursor="updated_at",
)


@with_config(sections=("sources", "crm"))
def crm_source(
    base_url: str = dlt.config.value,
    token: str = dlt.secrets.value,
    page_size: int = 200,
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Any:
    """The CRM as a dlt source: ``contacts`` and ``accounts``, incremental and merged by key.

    With ``window`` (a backfill), exactly the records whose ``updated_at`` is in ``[start,
    end)``: ``updated_since`` is the start, and dlt's incremental with an ``end_value`` drops
    what is at or after the end and keeps its state in a throwaway copy, so the stored
    watermark is neither read nor moved (the next regular load asks what it would have).
    """
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    loaded_at = datetime.now(UTC)
    cursor: dict[str, Any] = {"initial_value": EPOCH, "lag": LATE_UPDATE_LAG.total_seconds()}
    if window is not None:
        cursor = {"initial_value": window[0], "end_value": window[1]}

    def resource(contract: TableContract, key: str) -> dict[str, Any]:
        return {
            "name": contract.name,
            "primary_key": key,
            "schema_contract": dlt_schema_contract(policy),
            "endpoint": {
                "path": ENDPOINT.format(table=contract.name),
                "params": {"page_size": page_size},
                "response_actions": [parse_json_once],
                "data_selector": "data",
                "incremental": {
                    "start_param": "updated_since",
                    "cursor_path": "updated_at",
                    **cursor,
                    "on_cursor_value_missing": "include",
                },
            },
        }

    source = rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {"type": "bearer", "token": token},
                "paginator": {
                    "type": "page_number",
                    "base_page": 1,
                    "page_param": "page",
                    "total_path": "total_pages",
                },
            },
            "resource_defaults": {
                "write_disposition": {"disposition": "merge", "strategy": "upsert"},
            },
            "resources": [resource(CONTACTS, "contact_id"), resource(ACCOUNTS, "account_id")],
        },
        name="crm",
    )
    for contract in (CONTACTS, ACCOUNTS):
        contract.register(source.schema)
        resource = source.resources[contract.name]
        attach_guard(resource, "crm", contract, policy, stats, loaded_at, _locator(resource))
    return source


def parse_json_once(response: Response, *args: Any, **kwargs: Any) -> Response:
    """Parse a page with Python's own ``json`` (a dlt response action, run before dlt reads it).

    ``requests`` parses with simplejson when it is installed, which refuses ``NaN`` and
    ``Infinity``: one such value in one record would fail the whole page, and whether it does
    would depend on what else is installed. Python's ``json`` reads them (as Kafka's loader does)
    and the contract guard then quarantines that one record. A page Python cannot parse either
    is left as it is: dlt fails the load on it, with its page number, as a broken answer.
    """
    if response.ok:
        try:
            parsed = json.loads(response.content)
        except (ValueError, RecursionError):
            return response
        response.json = lambda **_: parsed  # type: ignore[method-assign]
    return response


def _locator(resource: Any) -> Any:
    """Where a record sits: the endpoint, the page, its index in it, the ``updated_since`` asked.

    The page is the guard's own count (pages come in order from page 1); the request dlt attaches
    to a page (``PageData``) is reused and already points at the next page by then.
    """

    def locate(page: int, index: int, record: Any, params: dict[str, Any]) -> dict[str, Any]:
        since = params.get("updated_since")
        since = since.isoformat() if hasattr(since, "isoformat") else since
        endpoint = ENDPOINT.format(table=resource.name)
        return {"endpoint": endpoint, "page": page, "index": index, "updated_since": since}

    return locate


def _build(load: LoadRequest) -> Any:
    conf, where = load.conf, load.location
    window = (load.window.start, load.window.end) if load.window else None
    return crm_source(where["base_url"], where["token"], conf.page_size, conf.schema_policy,
                      load.stats, window)  # fmt: skip


SPEC = SourceSpec(
    name="crm",
    build=_build,
    contracts=lambda conf: {c.name: c for c in (CONTACTS, ACCOUNTS)},
    reads=lambda table, conf, where, local: naming.http_endpoint(
        where["base_url"], ENDPOINT.format(table=table)
    ),
    system=lambda where: f"CRM API {where['base_url']}",
    settings=CrmSourceConfig,
    location={"base_url": "CRM_BASE_URL", "token": "CRM_API_TOKEN"},
    secrets=frozenset({"token"}),
    backfill=Backfill(cursor="updated_at", window="time"),
)
