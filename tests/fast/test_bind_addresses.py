"""Servers the platform runs in its own process listen on loopback only, and the engine's bind
address is one setting (the engine tier's tests/test_network_binding.py checks `make up`).
"""

from __future__ import annotations

import ipaddress

import psutil
import pytest

from lakehouse.core.config import Settings
from lakehouse.observability.lineage import site
from lakehouse.stack import http_standin
from lakehouse.stack.sample_data.world import World


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # a JVM's 127.0.0.1 shows as ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def test_in_process_servers_listen_on_loopback_only(tmp_settings: Settings) -> None:
    """The local HTTP service (CRM and FX stand-in) and the docs server of ``make docs``."""
    site.site_dir(tmp_settings).mkdir(parents=True, exist_ok=True)
    with (
        http_standin.serving_service(World(scale=0.001)) as service,
        site.server(tmp_settings, 0) as docs,
    ):
        ports = {service.server_address[1], docs.server_address[1]}
        mine = {c.laddr.port: c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN}  # fmt: skip
    assert ports <= set(mine), f"the servers' ports {ports} are not among {mine}"
    assert all(_is_loopback(mine[p]) for p in ports), {p: mine[p] for p in ports}


@pytest.mark.parametrize(
    ("address", "conf", "env"),
    [
        ("127.0.0.1", {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"},
         {"SPARK_LOCAL_IP": "127.0.0.1"}),
        ("0.0.0.0", {"spark.driver.bindAddress": "0.0.0.0"}, {}),
    ],
)  # fmt: skip
def test_engine_bind_address_is_one_setting(
    monkeypatch, address: str, conf: dict[str, str], env: dict[str, str]
) -> None:
    """engine.bind_address (LAKEHOUSE_ENGINE_BIND_ADDRESS) decides driver, block manager and UI:
    loopback by default; 0.0.0.0 opens every interface and lets Spark advertise the host name."""
    from lakehouse.core.config import load_settings
    from lakehouse.stack import engine

    monkeypatch.setenv("LAKEHOUSE_ENGINE_BIND_ADDRESS", address)
    settings = load_settings()
    spark_conf = engine.spark_conf(settings)
    assert {k: v for k, v in spark_conf.items() if k.startswith("spark.driver.")
            and k != "spark.driver.extraJavaOptions"} == conf  # fmt: skip
    assert engine.bind_env(settings.engine.bind_address) == env
    monkeypatch.setenv("LAKEHOUSE_ENGINE_BIND_ADDRESS", "my-laptop")
    with pytest.raises(Exception, match="bind_address"):
        load_settings()
