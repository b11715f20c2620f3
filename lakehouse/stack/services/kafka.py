"""A real, local, single-node Apache Kafka broker: the stand-in for the streaming source system.

Why a real broker and not a mock: the loaders use the same confluent-kafka clients in production,
and partitions, offsets, consumer assignment and topic creation are exactly the behaviour a mock
gets wrong. Why KRaft: Kafka 4 has no ZooKeeper any more; one JVM plays both broker and
controller, so the whole source system is one process.

The jars come from Maven Central (engine/kafka/pom.xml, fetched by ``make setup`` into
``.cache/kafka-jars``), so there is no Kafka tarball to download and unpack. We write our own
``server.properties`` and Log4j 2 config under ``<home>/kafka``, format the storage once, and
launch ``kafka.Kafka`` detached in its own process group, like the Spark engine
(lakehouse/stack/engine.py): pid in ``<home>/state``, log in ``<home>/logs``, stop with SIGTERM then
SIGKILL of the group.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

from confluent_kafka import KafkaError as ClientError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.core.config import REPO_ROOT
from lakehouse.stack.processes import (
    ExitedAtStartup,
    cmdline_has,
    ensure_running,
    live_pid,
    spawn_detached,
    stop_by_pid_file,
    wait_ready,
)

JAR_DIR: Path = REPO_ROOT / ".cache" / "kafka-jars"

HOST = "127.0.0.1"
BROKER_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
NODE_ID = 1

# The default heap of Kafka's start script is 1 GB; a local source system with a handful of
# small topics needs far less, and shares the machine with the Spark engine.
JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
    # Log4j's own shutdown hook stops logging as soon as SIGTERM arrives, so the broker's
    # shutdown messages (the ones you need when a stop goes wrong) would be lost.
    "-Dlog4j2.shutdownHookEnabled=false",
]


class KafkaError(RuntimeError):
    """The broker failed to start or stop; the message points at its log."""


def kafka_dir(home: Path) -> Path:
    """Where the broker's config and data live: ``<home>/kafka``."""
    return home / "kafka"


def data_dir(home: Path) -> Path:
    """The broker's ``log.dirs`` (topic partitions and the KRaft metadata log)."""
    return kafka_dir(home) / "data"


def log_file(home: Path, port: int = 9092) -> Path:
    return home / "logs" / f"kafka-{port}.log"


def _pid_file(home: Path, port: int) -> Path:
    return home / "state" / f"kafka-{port}.pid"


def _properties_file(home: Path) -> Path:
    return kafka_dir(home) / "server.properties"


def _log4j_file(home: Path) -> Path:
    return kafka_dir(home) / "log4j2.xml"


def server_properties(home: Path, port: int, controller_port: int) -> dict[str, str]:
    """Broker + controller in one process, on the loopback interface only, one replica of all."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        # A dynamic quorum of one (formatted with --standalone), as in Kafka 4's own quickstart.
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir(home)),
        "num.partitions": "3",
        "auto.create.topics.enable": "true",
        # Internal topics default to 3 replicas, which a single broker can never satisfy: group
        # commits and transactions would fail with COORDINATOR_NOT_AVAILABLE.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # 50 partitions each by default: slow to create on first use and pointless locally.
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.num.partitions": "3",
        # The default 3 s delay only batches joins of many consumers; locally it is just a wait.
        "group.initial.rebalance.delay.ms": "0",
    }


def _log4j_config(log: Path) -> str:
    """Log4j 2 config: everything to one file (Kafka's default config needs a YAML parser)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <File name="file" fileName={quoteattr(str(log))} append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Root level="info">
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
"""


def _check_jars() -> None:
    if not any(JAR_DIR.glob("kafka_*.jar")):
        raise FileNotFoundError(
            f"no Kafka jars in {JAR_DIR}; run `make setup` to fetch them from Maven Central"
        )


def _java() -> str:
    """JAVA_HOME's java when set (as spark-submit does), else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


def _java_command(home: Path, main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={_log4j_file(home)}",
        "-cp", f"{JAR_DIR}/*",
        main_class,
        *args,
    ]  # fmt: skip


def _new_cluster_id() -> str:
    """A Kafka Uuid as the StorageTool expects it: 16 random bytes, URL-safe base64, no padding.

    Generated here rather than by ``kafka-storage random-uuid``, which would cost a JVM start.
    Kafka refuses ids whose string form starts with '-' (they read as command-line flags).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(home: Path, log: Path) -> None:
    """Format the KRaft storage once; a formatted data dir keeps its cluster id for good."""
    if (data_dir(home) / "meta.properties").exists():
        return
    cmd = _java_command(home, STORAGE_TOOL_CLASS, "format",
                        "--config", str(_properties_file(home)),
                        "--cluster-id", _new_cluster_id(),
                        "--standalone")  # fmt: skip
    with log.open("ab") as out:
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if result.returncode != 0:
        raise KafkaError(f"formatting Kafka storage failed (code {result.returncode}); see {log}")


def _is_our_broker(home: Path) -> Callable[[int], bool]:
    """A broker run with our properties file (guards against a recycled pid)."""
    return lambda pid: (
        cmdline_has(pid, BROKER_CLASS) and cmdline_has(pid, str(_properties_file(home)))
    )


def _running_pid(home: Path, port: int) -> int | None:
    """Our broker's pid if its pid file names a live broker process, else None."""
    return live_pid(_pid_file(home, port), _is_our_broker(home))


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _admin(bootstrap: str) -> AdminClient:
    # log_level 0: librdkafka would otherwise print every refused connection to stderr.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def is_up(port: int = 9092, host: str = HOST) -> bool:
    """True when a Kafka broker answers metadata requests on the port (not merely a listener)."""
    if not port_open(port, host):
        return False
    try:
        metadata = _admin(f"{host}:{port}").list_topics(timeout=2.0)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def start(home: Path, port: int = 9092, controller_port: int = 9093, timeout_s: float = 90) -> int:
    """Start the broker detached and wait until a real client can list topics; return its pid."""
    _check_jars()
    for used in (port, controller_port):
        if port_open(used):
            raise KafkaError(f"port {used} on {HOST} is already in use (a broker already up?)")
    for folder in (kafka_dir(home), data_dir(home), home / "state", home / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    log = log_file(home, port)
    properties = server_properties(home, port, controller_port)
    _properties_file(home).write_text(
        "".join(f"{key}={value}\n" for key, value in properties.items())
    )
    _log4j_file(home).write_text(_log4j_config(log))
    _format_storage(home, log)

    # stdout/stderr go to the log too: JVM errors happen before Log4j is up.
    cmd = _java_command(home, BROKER_CLASS, str(_properties_file(home)))
    proc = spawn_detached(cmd, log, _pid_file(home, port), cwd=kafka_dir(home))
    try:
        if wait_ready(proc, lambda: is_up(port), timeout_s, poll_s=0.5):
            return proc.pid
    except ExitedAtStartup as exc:
        _pid_file(home, port).unlink(missing_ok=True)
        raise KafkaError(f"Kafka {exc} at start-up; see {log}") from None
    stop(home, port)
    raise KafkaError(f"Kafka did not answer on {HOST}:{port} within {timeout_s}s; see {log}")


def stop(home: Path, port: int = 9092, timeout_s: float = 30) -> bool:
    """Stop our broker and its process group; return False if none was running."""
    # SIGTERM runs Kafka's shutdown hook: it closes the logs cleanly, so the next start does
    # not have to recover segments.
    return stop_by_pid_file(_pid_file(home, port), _is_our_broker(home), timeout_s)


def running(
    home: Path, port: int = 9092, controller_port: int = 9093
) -> contextlib.AbstractContextManager[bool]:
    """Use the broker if one is up; otherwise start it and stop it afterwards (no stray process).

    A context manager yielding True when this call started the broker.
    """
    return ensure_running(
        lambda: is_up(port),
        lambda: start(home, port, controller_port),
        lambda: stop(home, port),
    )


def ensure_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create the topic if it does not exist; wait until every partition has a leader.

    Idempotent, so loaders and tests can call it unconditionally. Relying on auto-creation
    instead would give the broker's default partition count and a first produce that races the
    creation.
    """
    admin = _admin(bootstrap)
    future = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic]
    try:
        future.result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != ClientError.TOPIC_ALREADY_EXISTS:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if meta and meta.error is None and all(p.leader >= 0 for p in meta.partitions.values()):
            return
        time.sleep(0.2)
    raise KafkaError(f"topic {topic} has partitions without a leader on {bootstrap}")
