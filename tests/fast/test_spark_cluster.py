"""``engine.mode``: the command lines and settings of the standalone cluster, without a JVM.

The engine tier (tests/test_cluster.py) runs the cluster; here, what decides how it is launched:
local mode stays exactly as before, standalone submits to its own master with one executor per
worker, and the PII salt reaches the executors through the workers' environment only.
"""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from lakehouse.core import pii
from lakehouse.core.config import StandaloneConfig, load_settings
from lakehouse.stack import engine, spark_cluster


@pytest.fixture()
def standalone(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_ENGINE__MODE", "standalone")
    monkeypatch.setenv("LAKEHOUSE_ENGINE__STANDALONE__MASTER_PORT", "43100")
    monkeypatch.setenv("LAKEHOUSE_ENGINE__STANDALONE__MASTER_UI_PORT", "43101")
    monkeypatch.setenv("LAKEHOUSE_ENGINE__STANDALONE__WORKER_UI_PORT", "43102")
    salt = "a-salt-of-the-test-not-a-real-one"  # pragma: allowlist secret
    monkeypatch.setenv(pii.SALT_ENV, salt)
    return load_settings()


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_local_mode_is_the_default_and_launches_as_before(tmp_settings) -> None:
    assert tmp_settings.engine.mode == "local"
    cmd = engine.server_command(tmp_settings)
    assert _option(cmd, "--master") == "local[*]"
    assert not [c for c in cmd if c.startswith("spark.executor.") or c.startswith("spark.cores")]
    assert spark_cluster.executor_conf(tmp_settings) == {}


def test_standalone_submits_to_its_own_master_with_one_executor_per_worker(standalone) -> None:
    cmd = engine.server_command(standalone)
    assert _option(cmd, "--master") == "spark://127.0.0.1:43100"
    conf = engine.spark_conf(standalone)
    assert conf["spark.executor.cores"] == "1" and conf["spark.executor.memory"] == "1g"
    assert conf["spark.cores.max"] == "2"  # 2 workers x 1 core
    classpath = conf["spark.executor.extraClassPath"].split(":")
    assert any("delta-spark_" in jar for jar in classpath), "executors need Delta's classes"


def test_the_daemons_bind_the_engine_address_on_the_configured_ports(standalone) -> None:
    master = spark_cluster.master_command(standalone)
    assert master[1] == spark_cluster.MASTER_CLASS
    assert _option(master, "--host") == "127.0.0.1"
    assert (_option(master, "--port"), _option(master, "--webui-port")) == ("43100", "43101")
    workers = [spark_cluster.worker_command(standalone, i) for i in range(2)]
    assert [_option(w, "--webui-port") for w in workers] == ["43102", "43103"]
    for i, worker in enumerate(workers):
        assert worker[1] == spark_cluster.WORKER_CLASS and worker[-1] == "spark://127.0.0.1:43100"
        assert (_option(worker, "--cores"), _option(worker, "--memory")) == ("1", "1g")
        assert _option(worker, "--work-dir").startswith(str(standalone.home))
        assert _option(worker, "--work-dir").endswith(f"worker-{i}")
    env = spark_cluster.daemon_env(standalone)
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["SPARK_LOCAL_DIRS"] == str(standalone.home / "tmp")
    assert "-Dspark.master.rest.enabled=false" in env["SPARK_MASTER_OPTS"]  # no port 6066
    assert "-Dspark.port.maxRetries=0" in env["SPARK_DAEMON_JAVA_OPTS"]  # no silent move


def test_a_master_port_already_taken_is_refused_before_any_launch(tmp_path, monkeypatch) -> None:
    """Another lake's master there would take this engine's work (and mask PII with its salt)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
        monkeypatch.setenv("LAKEHOUSE_ENGINE__MODE", "standalone")
        monkeypatch.setenv("LAKEHOUSE_ENGINE__STANDALONE__MASTER_PORT", str(taken.getsockname()[1]))
        settings = load_settings()
        with pytest.raises(spark_cluster.ClusterError, match="taken"):
            spark_cluster.start(settings)
    assert not list((tmp_path / "state").glob("spark-*.pid")), "nothing may have been launched"


def test_the_salt_reaches_executors_by_environment_never_by_a_setting(standalone) -> None:
    salt = pii.salt(standalone)
    assert spark_cluster.daemon_env(standalone)[pii.SALT_ENV] == salt
    assert not [part for part in engine.server_command(standalone) if salt in part]


@pytest.mark.parametrize(
    ("change", "named"),
    [({"executor_cores": 2}, "executor_cores"), ({"executor_memory": "2g"}, "executor_memory")],
)
def test_an_executor_bigger_than_a_worker_is_refused(change: dict, named: str) -> None:
    """The master would never grant it: every query would wait for good, silently."""
    with pytest.raises(ValidationError, match=named):
        StandaloneConfig(**change)


def test_a_mode_that_does_not_exist_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_ENGINE__MODE", "yarn")
    with pytest.raises(Exception, match="LAKEHOUSE_ENGINE__MODE"):
        load_settings()


def test_executors_get_the_lakes_s3_credentials_from_their_workers(standalone, monkeypatch) -> None:
    # s3a on an executor reads AWS_* from its environment, which it inherits from its worker
    monkeypatch.setenv("LAKEHOUSE_STORAGE__ROOT", "s3://lake/cluster")
    on_s3 = load_settings()
    aws = on_s3.storage_env()
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= set(aws)
    env = spark_cluster.daemon_env(on_s3)
    assert {name: env[name] for name in aws} == aws
    assert not [part for part in engine.server_command(on_s3)
                if aws["AWS_SECRET_ACCESS_KEY"] in part]  # fmt: skip
