"""Where the lake lives, as one type every reader and writer takes: a local folder or S3.

The lake's locations (bronze and the ops tables under ``<root>/lake``, the Spark warehouse of
silver, gold and dq under ``<root>/warehouse``) are URIs: a local path (the default: the lake
home, unchanged) or ``s3://bucket/prefix`` (``storage.root`` in lakehouse.yml).

Two clients, two schemes, converted here and nowhere else:

- delta-rs (dlt's bronze writer, ``deltalake`` readers), fsspec/s3fs (dlt) and pyarrow.fs use
  ``s3://bucket/key`` (``Location.uri``);
- Spark's Hadoop filesystem for S3 is ``s3a://bucket/key`` (``Location.spark``): the
  warehouse dir and ``spark.lakehouse.lake.dir`` (read by dbt's ``lake_dir`` macro) use it.

Credentials and endpoint come from the environment only, under the standard names
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION). For
the local S3-compatible server (lakehouse/stack/services/s3.py) the key pair is generated at its
first start into ``<home>/s3/credentials.json`` (0600) and handed to every process the platform
starts through those same variables (``environment``).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

S3 = "s3://"
S3A = "s3a://"
LOCAL_REGION = "us-east-1"
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
)


def is_s3(uri: str | Path) -> bool:
    return str(uri).startswith((S3, S3A))


def to_spark(uri: str) -> str:
    """The URI Spark reads: ``s3a://`` for S3 (Hadoop's S3A filesystem), a path otherwise."""
    return S3A + uri.removeprefix(S3) if uri.startswith(S3) else uri


def to_delta(uri: str) -> str:
    """The URI delta-rs, fsspec and pyarrow read: ``s3://`` for S3, a path otherwise."""
    return S3 + uri.removeprefix(S3A) if uri.startswith(S3A) else uri


def bucket_of(uri: str) -> str:
    """``bucket`` of ``s3://bucket/prefix``."""
    return to_delta(uri).removeprefix(S3).split("/", 1)[0]


def local_endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def credentials_file(home: Path) -> Path:
    return Path(home) / "s3" / "credentials.json"


def ensure_local_credentials(home: Path) -> dict[str, str]:
    """The local server's key pair, generated (0600) on first use; never a committed default."""
    path = credentials_file(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = {
            "AWS_ACCESS_KEY_ID": "lakehouse-" + secrets.token_hex(8),
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(keys, out)
    return local_credentials(home)


def local_credentials(home: Path) -> dict[str, str]:
    return json.loads(credentials_file(home).read_text())


def environment(root: str | None, local_server: bool, home: Path, port: int) -> dict[str, str]:
    """The AWS_* variables the platform's processes need for a lake at ``root``.

    Local folder: none. The local server: its endpoint, region and generated key pair (which
    win over an AWS_* already set, so a developer's real credentials never reach it). A real
    S3: nothing added: every process reads the variables the environment already has.
    """
    if not (root and is_s3(root) and local_server):
        return {}
    return {
        **ensure_local_credentials(home),
        "AWS_ENDPOINT_URL": local_endpoint(port),
        "AWS_REGION": LOCAL_REGION,
        # delta-rs (object_store) refuses plain http unless told; the local server speaks http.
        "AWS_ALLOW_HTTP": "true",
    }


@dataclass(frozen=True)
class Location:
    """A folder of the lake: a local path or an ``s3://`` prefix, with what its clients need.

    ``env`` holds the AWS_* values that override the process's own for this location (the local
    server's); ``uri`` never ends with ``/``.
    """

    uri: str
    env: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, value: str | Path, env: dict[str, str] | None = None) -> Location:
        text = str(value)
        uri = to_delta(text).rstrip("/") if is_s3(text) else str(Path(text))
        return cls(uri, tuple(sorted((env or {}).items())))

    @property
    def is_local(self) -> bool:
        return not is_s3(self.uri)

    @property
    def path(self) -> Path:
        """The local folder; an error on S3 (a caller that needs one must not run there)."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not a local folder")
        return Path(self.uri)

    @property
    def spark(self) -> str:
        """What Spark is given: a local path, or ``s3a://``."""
        return to_spark(self.uri)

    @property
    def url(self) -> str:
        """A URL for fsspec-based clients such as dlt's filesystem destination."""
        return self.path.as_uri() if self.is_local else self.uri

    @property
    def name(self) -> str:
        return PurePosixPath(self.uri).name

    def __truediv__(self, part: str) -> Location:
        return Location(f"{self.uri}/{part}", self.env)

    def __str__(self) -> str:
        return self.uri

    def relative_to(self, other: Location) -> str:
        """``a/b`` of ``<other>/a/b``."""
        return self.uri.removeprefix(other.uri).strip("/")

    def aws(self) -> dict[str, str]:
        """The AWS_* values in force for this location: the process's, then ``env`` over them."""
        found = {k: os.environ[k] for k in (*AWS_VARIABLES, "AWS_ALLOW_HTTP") if os.environ.get(k)}
        return {**found, **dict(self.env)}

    def storage_options(self) -> dict[str, str] | None:
        """delta-rs's ``storage_options`` (None for a local folder).

        No locking provider and no ``AWS_S3_ALLOW_UNSAFE_RENAME``: delta-rs commits on S3 with
        a conditional put (``If-None-Match``), safe for concurrent writers (docs/storage.md).
        """
        if self.is_local:
            return None
        aws = self.aws()
        aws.setdefault("AWS_REGION", LOCAL_REGION)
        return aws

    def filesystem(self) -> tuple[Any, str]:
        """``(pyarrow FileSystem, path in it)`` for listing and sizing."""
        from pyarrow import fs  # pyarrow is heavy: only where a listing is needed

        if self.is_local:
            return fs.LocalFileSystem(), self.uri
        aws = self.aws()
        endpoint = aws.get("AWS_ENDPOINT_URL")
        scheme = "http" if endpoint and endpoint.startswith("http://") else "https"
        filesystem = fs.S3FileSystem(
            access_key=aws.get("AWS_ACCESS_KEY_ID"),
            secret_key=aws.get("AWS_SECRET_ACCESS_KEY"),
            session_token=aws.get("AWS_SESSION_TOKEN"),
            region=aws.get("AWS_REGION", LOCAL_REGION),
            endpoint_override=endpoint.split("://", 1)[1] if endpoint else None,
            scheme=scheme,
        )
        return filesystem, self.uri.removeprefix(S3)

    def is_dir(self) -> bool:
        from pyarrow import fs

        filesystem, path = self.filesystem()
        return filesystem.get_file_info(path).type == fs.FileType.Directory

    def dirs(self) -> list[Location]:
        """The folders directly under this one, by name (none if it does not exist)."""
        from pyarrow import fs

        filesystem, path = self.filesystem()
        selector = fs.FileSelector(path, allow_not_found=True)
        found = [i for i in filesystem.get_file_info(selector) if i.type == fs.FileType.Directory]
        return sorted((self / i.base_name for i in found), key=lambda loc: loc.uri)

    def size(self) -> int:
        """Bytes of every file under this folder (0 if it does not exist)."""
        from pyarrow import fs

        filesystem, path = self.filesystem()
        selector = fs.FileSelector(path, recursive=True, allow_not_found=True)
        return sum(i.size or 0 for i in filesystem.get_file_info(selector)
                   if i.type == fs.FileType.File)  # fmt: skip

    def read_text(self) -> str:
        filesystem, path = self.filesystem()
        with filesystem.open_input_stream(path) as stream:
            return stream.read().decode()

    def mkdir(self) -> None:
        """Create the local folder (and its parents); S3 has no folders to create."""
        if self.is_local:
            self.path.mkdir(parents=True, exist_ok=True)

    def delta_tables(self, depth: int) -> list[Location]:
        """Delta tables ``depth`` folders below this one (a ``_delta_log`` folder in them)."""
        level = [self]
        for _ in range(depth):
            level = [child for loc in level for child in loc.dirs()]
        return [loc for loc in level if (loc / "_delta_log").is_dir()]


def as_location(value: Location | Path | str) -> Location:
    """A Location as is; a path or URI without the local server's variables."""
    return value if isinstance(value, Location) else Location.of(value)


def delta_table(value: Location | Path | str, **kwargs: Any) -> Any:
    """``deltalake.DeltaTable`` at ``value``, on a local folder or S3 alike."""
    from deltalake import DeltaTable

    location = as_location(value)
    return DeltaTable(location.uri, storage_options=location.storage_options(), **kwargs)


def write_delta(value: Location | Path | str, data: Any, **kwargs: Any) -> None:
    """``deltalake.write_deltalake`` to ``value``, on a local folder or S3 alike."""
    from deltalake import write_deltalake

    location = as_location(value)
    write_deltalake(location.uri, data, storage_options=location.storage_options(), **kwargs)


def ensure_delta_table(path: Location, schema: Any) -> Location:
    """Create the empty Delta table of ``schema`` (a ``pyarrow.Schema``) at ``path`` unless one
    is there, so the engine can register it before anything was written to it. Two processes
    may race to create it: the loser finds the winner's table and carries on."""
    if not (path / "_delta_log").is_dir():
        path.mkdir()
        try:
            write_delta(path, schema.empty_table(), mode="error")
        except Exception:  # another process created it first
            if not (path / "_delta_log").is_dir():
                raise
    return path
