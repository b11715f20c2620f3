"""The local S3-compatible server a lake on ``s3://`` is developed and tested against.

Why moto's server mode and not s3proxy (both were tried against the same probe: a put with
``If-None-Match: *`` on an existing key, ranged GET, copy, a two-part multipart upload, listing
with a delimiter and with ``start-after``, then delta-rs writing and appending a table):

- moto answers like S3 on every one of them. Above all it refuses the conditional put with
  ``412 PreconditionFailed``, the one behaviour Delta's safety on S3 rests on: delta-rs commits
  version N with ``If-None-Match: *``, and a second writer of the same version must fail, not
  overwrite (docs/storage.md).
- s3proxy 2.6.0 (filesystem and filesystem-nio2 backends) silently overwrote the object on
  ``If-None-Match: *``, so two concurrent commits of one version would both "succeed" there and
  a lost commit would go unnoticed in tests; its listings return directory markers (``d/y/``)
  that S3 never returns; it rejects the checksum headers today's AWS SDKs send by default unless
  told to ignore them; and it needs 43 MB of jars (132 files) fetched at set-up.

What moto lacks, and what this module adds: moto keeps objects in memory. So that the lake
outlives ``make down`` / ``make up`` like the other services' data, the server restores every
object from ``<home>/s3/objects/<bucket>/<key>`` at start and writes them all back there when it
is stopped (SIGTERM, as ``stop`` sends). A server killed with SIGKILL loses what was written
since its start: it is a development stand-in, never the production store (a real S3 is).

Credentials: moto checks none, but nothing here uses a default one either. The first start
generates an access key and secret into ``<home>/s3/credentials.json`` (mode 0600, under the
git-ignored home); the platform's processes get them through the standard AWS_* variables
(lakehouse/core/storage.py). Process model as for the other services: detached in its own
process group, pid in ``<home>/state``, output in ``<home>/logs``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path

from lakehouse.core import storage
from lakehouse.stack.processes import (
    ExitedAtStartup,
    cmdline_has,
    ensure_running,
    spawn_detached,
    stop_by_pid_file,
    wait_ready,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 9000
MODULE = "lakehouse.stack.services.s3"
# A key ending in "/" (the empty "directory marker" objects Hadoop's s3a writes) is saved as this
# file inside the folder of that name: a file cannot have the same name as a folder.
DIRECTORY_MARKER = ".s3-directory-marker"

log = logging.getLogger(__name__)


class S3Error(RuntimeError):
    """The server failed to start; the message points at its log."""


def objects_dir(home: Path) -> Path:
    """Where the server's objects live while it is stopped: ``<bucket>/<key>``."""
    return Path(home).resolve() / "s3" / "objects"


def log_file(home: Path, port: int = DEFAULT_PORT) -> Path:
    return Path(home).resolve() / "logs" / f"s3-{port}.log"


def _pid_file(home: Path, port: int) -> Path:
    return Path(home).resolve() / "state" / f"s3-{port}.pid"


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _client(home: Path, port: int):
    import boto3  # slow import; only where the server is used
    from botocore.config import Config

    keys = storage.local_credentials(home)
    return boto3.client(
        "s3",
        endpoint_url=storage.local_endpoint(port),
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        region_name=storage.LOCAL_REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def is_up(port: int = DEFAULT_PORT, home: Path | None = None) -> bool:
    """True when an S3 client can list buckets on ``port``."""
    if not port_open(port):
        return False
    try:
        if home is None:
            return True
        _client(home, port).list_buckets()
        return True
    except Exception:
        return False


def ensure_bucket(home: Path, port: int, bucket: str) -> bool:
    """Create ``bucket`` on the local server unless it exists; return True if created."""
    client = _client(home, port)
    if bucket in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        return False
    client.create_bucket(Bucket=bucket)
    return True


def _is_ours(pid: int) -> bool:
    return cmdline_has(pid, MODULE)


def start(home: Path, port: int = DEFAULT_PORT, timeout_s: float = 60) -> int:
    """Start the server detached and wait until a client lists buckets; return its pid."""
    if port_open(port):
        raise S3Error(f"port {port} on {HOST} is already in use")
    for folder in (objects_dir(home), Path(home) / "state", Path(home) / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    storage.ensure_local_credentials(home)
    out = log_file(home, port)
    cmd = [sys.executable, "-m", MODULE, "--port", str(port), "--home", str(Path(home).resolve())]
    proc = spawn_detached(cmd, out, _pid_file(home, port))
    try:
        if wait_ready(proc, lambda: _restored(home, port), timeout_s, poll_s=0.3):
            return proc.pid
    except ExitedAtStartup as exc:
        _pid_file(home, port).unlink(missing_ok=True)
        raise S3Error(f"the S3 server {exc}; see {out}") from None
    stop(home, port)
    raise S3Error(f"the S3 server did not answer on {HOST}:{port} within {timeout_s}s; see {out}")


def _restored(home: Path, port: int) -> bool:
    """Up, and done restoring the saved objects (the server writes a marker bucket-less file)."""
    return is_up(port, home) and _ready_marker(home, port).exists()


def _ready_marker(home: Path, port: int) -> Path:
    return Path(home).resolve() / "state" / f"s3-{port}.ready"


def stop(home: Path, port: int = DEFAULT_PORT, timeout_s: float = 120) -> bool:
    """Stop our server (it saves its objects first); return False if none was running."""
    stopped = stop_by_pid_file(_pid_file(home, port), _is_ours, timeout_s)
    _ready_marker(home, port).unlink(missing_ok=True)
    return stopped


def running(home: Path, port: int = DEFAULT_PORT) -> contextlib.AbstractContextManager[bool]:
    """Use the server if it is up; otherwise start it and stop it afterwards.

    A context manager yielding True when this call started the server.
    """
    return ensure_running(
        lambda: is_up(port, home), lambda: start(home, port), lambda: stop(home, port)
    )


def _restore(home: Path, port: int) -> int:
    """Put every saved object back; return how many."""
    client, root, count = _client(home, port), objects_dir(home), 0
    for bucket in sorted(p for p in root.iterdir() if p.is_dir()):
        client.create_bucket(Bucket=bucket.name)
        for path in sorted(p for p in bucket.rglob("*") if p.is_file()):
            key = path.relative_to(bucket).as_posix()
            if path.name == DIRECTORY_MARKER:
                key = key.removesuffix(DIRECTORY_MARKER)
            client.put_object(Bucket=bucket.name, Key=key, Body=path.read_bytes())
            count += 1
    return count


def _save(home: Path, port: int) -> int:
    """Write every object to ``objects_dir`` (a new folder swapped in whole); return how many."""
    client, root, count = _client(home, port), objects_dir(home), 0
    fresh = root.with_name("objects.saving")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    paginator = client.get_paginator("list_objects_v2")
    for bucket in client.list_buckets().get("Buckets", []):
        (fresh / bucket["Name"]).mkdir()
        for page in paginator.paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                target = (
                    fresh / bucket["Name"] / (key + DIRECTORY_MARKER if key.endswith("/") else key)
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                body = client.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"]
                target.write_bytes(body.read())
                count += 1
    old = root.with_name("objects.old")
    shutil.rmtree(old, ignore_errors=True)
    if root.exists():
        root.rename(old)
    fresh.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return count


def serve(port: int, home: Path) -> None:
    """Run moto's S3 in this process: restore the saved objects, serve until SIGTERM, save.

    The socket is bound here, in the main thread (not by moto's ThreadedMotoServer, whose
    thread dies on a port in use and leaves its caller waiting): a port taken makes this
    process exit at once, and ``start`` says so.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, name="s3", daemon=True).start()
    log.info("restored %d objects", _restore(home, port))
    _ready_marker(home, port).write_text("ready")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    log.info("saved %d objects", _save(home, port))
    server.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(args.port, args.home)


if __name__ == "__main__":
    main()
