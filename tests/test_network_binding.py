"""Nothing the platform runs listens beyond this machine unless asked.

``lakehouse up`` (what ``make up`` runs) starts the engine, PostgreSQL, Kafka and the Snowflake
emulator on a lake home of the test's own and free ports; every socket their processes (and
their children) listen on must be a loopback address. The in-process servers (the local HTTP
service the loaders read, the docs server of ``make docs``) are checked the same way.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

from lakehouse.core.config import DEFAULT_CONFIG_FILE, REPO_ROOT

PORTS = ("thrift", "postgres", "kafka", "controller", "snowflake", "spark_ui", "driver",
         "block_manager")  # fmt: skip


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # a JVM's 127.0.0.1 shows as ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def _processes_of(home: Path) -> list[psutil.Process]:
    """Every process running from the lake home (its path in the command line or as working
    directory), with all its children: the servers ``up`` started, and nothing of anyone else."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            ours = str(home) in " ".join(proc.cmdline()) or proc.cwd().startswith(str(home))
            if ours:
                for p in [proc, *proc.children(recursive=True)]:
                    found[p.pid] = p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return list(found.values())


def _listening(procs: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket and bound UDP socket."""
    found = []
    for proc in procs:
        try:
            for conn in proc.net_connections(kind="inet"):
                listening = conn.status == psutil.CONN_LISTEN
                bound_udp = conn.type == socket.SOCK_DGRAM and not conn.raddr
                if listening or bound_udp:
                    found.append((proc.name(), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _cli(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakehouse", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_make_up_listens_on_loopback_only(tmp_path: Path, free_ports) -> None:
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    config["engine"]["driver_memory"] = "1g"  # a second engine beside the suite's: keep it small
    config_file = tmp_path / "lakehouse.yml"
    config_file.write_text(yaml.safe_dump(config))
    home = (tmp_path / "home").resolve()
    env = {
        **{k: v for k, v in os.environ.items() if k != "LAKEHOUSE_ENGINE_BIND_ADDRESS"},
        "LAKEHOUSE_CONFIG": str(config_file),
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_THRIFT_PORT": str(ports["thrift"]),
        "LAKEHOUSE_POSTGRES_PORT": str(ports["postgres"]),
        "LAKEHOUSE_KAFKA_PORT": str(ports["kafka"]),
        "LAKEHOUSE_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "LAKEHOUSE_SNOWFLAKE_PORT": str(ports["snowflake"]),
        # Fixed ports for the UI, driver RPC and block manager, to name each socket found.
        "LAKEHOUSE_SPARK_CONF": f"spark.ui.port={ports['spark_ui']},"
        f"spark.driver.port={ports['driver']},spark.blockManager.port={ports['block_manager']}",
    }
    for name in ("REDSHIFT_URL", "KAFKA_BOOTSTRAP_SERVERS", "SNOWFLAKE_ACCOUNT", "SPARK_LOCAL_IP"):
        env.pop(name, None)
    try:
        up = _cli(env, "up", timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        sockets = _listening(_processes_of(home))
    finally:
        down = _cli(env, "down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr

    by_port = {port: (name, ip) for name, ip, port in sockets}
    missing = {what: port for what, port in ports.items() if port not in by_port}
    assert not missing, f"nothing listens for {missing}; found {sorted(sockets)}"
    exposed = sorted(s for s in sockets if not _is_loopback(s[1]))
    assert not exposed, f"listening beyond this machine: {exposed}"
    assert not _processes_of(home), "`lakehouse down` left processes of the lake home running"
