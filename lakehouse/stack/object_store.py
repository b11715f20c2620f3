"""Spark's side of a lake on S3: Hadoop's s3a filesystem and Delta's log store for it.

Spark reads ``s3a://`` (lakehouse/core/storage.py converts the lake's ``s3://`` URIs in one
place); hadoop-aws and the AWS SDK v2 modules it loads are fetched by ``make setup``
(engine/pom.xml). Nothing secret is written into the command line: the s3a credentials provider
reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) from the engine's
environment, which the engine is given by ``Settings.storage_env`` (the local server's
generated pair) or inherits (a real S3).

Concurrent writers (docs/storage.md): Delta's ``S3SingleDriverLogStore`` makes a commit atomic
by a lock inside one driver JVM, so one Spark cluster (this engine) may write a given table;
two clusters writing the same table on S3 could both commit one version. delta-rs (bronze)
commits with S3's conditional put instead, safe across processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from lakehouse.core.config import Settings
from lakehouse.core.storage import LOCAL_REGION, bucket_of, is_s3
from lakehouse.stack.services import s3

S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"
ENV_CREDENTIALS = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
SINGLE_DRIVER_LOG_STORE = "io.delta.storage.S3SingleDriverLogStore"


def storage_conf(settings: Settings) -> dict[str, str]:
    """The Spark settings for the lake's storage; none when it is a local folder."""
    if not is_s3(settings.storage_root.uri):
        return {}
    aws = {**os.environ, **settings.storage_env()}
    conf = {
        "spark.hadoop.fs.s3a.impl": S3A_FILESYSTEM,
        "spark.hadoop.fs.s3a.aws.credentials.provider": ENV_CREDENTIALS,
        "spark.hadoop.fs.s3a.endpoint.region": aws.get("AWS_REGION") or LOCAL_REGION,
        # Delta's default for s3a too, named so that its single-cluster limit is in plain sight.
        "spark.delta.logStore.s3a.impl": SINGLE_DRIVER_LOG_STORE,
    }
    endpoint = aws.get("AWS_ENDPOINT_URL")
    if endpoint:
        # An S3-compatible server at its own address: buckets in the path, not the host name.
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            endpoint.startswith("https://")
        ).lower()
    return conf


def served_locally(settings: Settings) -> bool:
    """Whether the lake is on the local S3-compatible server (``storage.local_server``)."""
    return is_s3(settings.storage_root.uri) and settings.storage.local_server


def start_local(settings: Settings) -> list[str]:
    """Start the local S3 server (``make up``) and create the lake's bucket, if the lake is
    configured on it; nothing for a local folder or a real S3."""
    if not served_locally(settings):
        return []
    port, said = settings.services.s3_port, []
    if s3.is_up(port, settings.home):
        said.append(f"S3 server already up on port {port}")
    else:
        s3.start(settings.home, port)
        said.append(
            f"S3 server (moto) up on port {port}, objects under {s3.objects_dir(settings.home)}"
        )
    bucket = bucket_of(settings.storage_root.uri)
    if s3.ensure_bucket(settings.home, port, bucket):
        said.append(f"bucket {bucket} created")
    return said


def stop_local(settings: Settings) -> list[str]:
    """Stop the local S3 server this project started (it saves its objects first)."""
    if s3.stop(settings.home, settings.services.s3_port):
        return ["S3 server stopped"]
    return []


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[bool]:
    """The lake's local S3 server for the block, its bucket there (started and stopped by this
    call if it was not up); nothing to do for a local folder or a real S3."""
    if not served_locally(settings):
        yield False
        return
    with s3.running(settings.home, settings.services.s3_port) as started:
        s3.ensure_bucket(settings.home, settings.services.s3_port,
                         bucket_of(settings.storage_root.uri))  # fmt: skip
        yield started
