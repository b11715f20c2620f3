"""A failing source system is not a bad record: bounded retries, then a clean failure naming it.

Three kinds of trouble reach a load, and each has one place where it is handled:

- a bad record (unparsable, mistyped, unknown columns): the guard quarantines it
  (ingestion/contracts.py); it never reaches this module;
- a ``fail`` schema policy, a bug, a wrong setting: the load fails at once; retrying would
  only repeat it (and a SchemaContractViolation is never retried);
- a failing *system*: down, refusing connections, 5xx, 429, stalled past a timeout, a
  connection reset in the middle of a page, a database restarting or locked, a broker gone.
  That is transient, so it is retried with backoff within ``source_retry`` (lakehouse.yml),
  then the load stops with a ``SourceUnavailable`` naming the source and the system.

Where each retry lives. HTTP requests are retried one at a time by dlt's own client
(``dlt.sources.helpers.requests``: tenacity, exponential backoff, Retry-After honoured), which
both HTTP sources use; ``http_retries`` configures it from ``source_retry`` for the duration of
a load, so the page that failed is fetched again and the pages before it are not. SQLAlchemy
and confluent-kafka have no such retry around a whole read, so a SQL or Kafka load that fails on
its system is run again whole (``with_retries``). That is safe because a failed dlt run commits
nothing: records, watermarks and Kafka offsets are committed together with the load package, so
the next attempt, and the next run, resume from the last committed state.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import requests
import sqlalchemy.exc
from confluent_kafka import KafkaError, KafkaException

from ingestion.contracts import SchemaContractViolation
from lakehouse.core import environment
from lakehouse.core.config import SourceRetryConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# librdkafka codes that mean "the broker is not there (yet)": worth another attempt.
KAFKA_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._RESOLVE,
    KafkaError._WAIT_COORD,
    KafkaError._NODE_UPDATE,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.BROKER_NOT_AVAILABLE,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
}

# PostgreSQL SQLSTATEs of a server that is going away, overloaded or restarting: 08 connection
# exception, 53 insufficient resources, 57P01-57P03 admin/crash shutdown and "cannot connect
# now", 40001/40P01 serialization failure and deadlock.
PG_TRANSIENT_CLASSES = ("08", "53", "57P")
PG_TRANSIENT_CODES = {"40001", "40P01"}
# Errors raised while connecting that no retry can fix.
NOT_TRANSIENT_MESSAGES = (
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "no such table",
    "no such column",
)
SQLITE_TRANSIENT_MESSAGES = ("database is locked", "database is busy", "unable to open",
                             "disk i/o error")  # fmt: skip


class SourceUnavailable(RuntimeError):
    """A source system kept failing within the retry bounds: the load stopped, nothing written.

    The message names the source, the system, the attempts and the time spent, and says where
    the next run resumes; ``lakehouse ingest`` prints it and exits non-zero.
    """

    def __init__(self, source: str, system: str, attempts: int, seconds: float, detail: str):
        self.source, self.system, self.attempts, self.seconds = source, system, attempts, seconds
        super().__init__(
            f"{source}: {system} failed after {attempts} attempts over {seconds:.0f} s: "
            f"{detail}. Nothing of this load was written; bronze and the source's state "
            f"(watermark, offsets) are as the last committed load left them, and the next "
            f"run resumes from there."
        )


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps: dlt nests the system's error two or three deep."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        context = None if current.__suppress_context__ else current.__context__
        todo += [current.__cause__ or context, getattr(current, "exception", None)]


def _http_failure(error: BaseException) -> str | None:
    if isinstance(error, requests.HTTPError):
        response = error.response
        if response is not None and (response.status_code == 429 or response.status_code >= 500):
            request = response.request
            where = f" for {request.method} {request.url}" if request is not None else ""
            return f"HTTP {response.status_code} {response.reason}{where}"
        return None
    if isinstance(error, requests.Timeout):
        return f"no answer within the timeout ({error})"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return f"connection broken in the middle of a response ({error})"
    if isinstance(error, requests.ConnectionError):
        return f"connection failed ({error})"
    return None


def _sql_failure(error: BaseException) -> str | None:
    message = str(error).lower()
    if any(text in message for text in NOT_TRANSIENT_MESSAGES):
        return None
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return f"connection lost ({_first_line(error.orig)})"
    if isinstance(error, sqlite3.OperationalError):
        if any(text in message for text in SQLITE_TRANSIENT_MESSAGES):
            return f"database unavailable ({_first_line(error)})"
        return None
    code = getattr(error, "pgcode", None)
    if code is not None:
        if code in PG_TRANSIENT_CODES or code.startswith(PG_TRANSIENT_CLASSES):
            return f"server unavailable (SQLSTATE {code}: {_first_line(error)})"
        return None
    # psycopg2 reports a refused, reset or closed connection as OperationalError, no SQLSTATE
    if type(error).__name__ in ("OperationalError", "InterfaceError") and type(
        error
    ).__module__.startswith("psycopg2"):
        return f"connection failed ({_first_line(error)})"
    return None


def _kafka_failure(error: BaseException) -> str | None:
    if not isinstance(error, KafkaException) or not error.args:
        return None
    kafka_error = error.args[0]
    if not isinstance(kafka_error, KafkaError):
        return None
    if kafka_error.code() in KAFKA_TRANSIENT or kafka_error.retriable():
        return f"{kafka_error.name()}: {kafka_error.str()}"
    return None


def system_failure(error: BaseException) -> str | None:
    """What failed, if ``error`` is a transient failure of a source system; None otherwise.

    None means "fail at once": a contract violation under the ``fail`` policy, a bug, a wrong
    setting. Only errors known to come from a system that is down, slow or restarting count.
    """
    chain = list(causes(error))
    if any(isinstance(e, SchemaContractViolation) for e in chain):
        return None
    for cause in chain:
        found = _http_failure(cause) or _sql_failure(cause) or _kafka_failure(cause)
        if found:
            return found
        if isinstance(cause, ConnectionError | socket.timeout | TimeoutError):
            return f"{type(cause).__name__}: {cause}"
    return None


def retried_by_client(error: BaseException) -> bool:
    """True for HTTP failures: dlt's client has already retried the request within the bounds."""
    return any(_http_failure(cause) for cause in causes(error))


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""


# dlt's HTTP client reads its retry settings from its runtime configuration, resolved from the
# environment when a client is built (dlt.common.configuration.specs.RuntimeConfiguration).
HTTP_SETTINGS = {
    "RUNTIME__REQUEST_MAX_ATTEMPTS": lambda p: p.attempts,
    "RUNTIME__REQUEST_BACKOFF_FACTOR": lambda p: p.backoff_s,
    "RUNTIME__REQUEST_MAX_RETRY_DELAY": lambda p: p.max_backoff_s,
    "RUNTIME__REQUEST_TIMEOUT": lambda p: p.timeout_s,
}


@contextlib.contextmanager
def http_retries(policy: SourceRetryConfig) -> Iterator[None]:
    """dlt's HTTP client retries with ``policy`` inside the block: attempts per request, backoff
    (``backoff_s`` doubling, each wait capped by ``max_backoff_s``, Retry-After honoured within
    that cap) and ``timeout_s`` per request. Restores the previous environment afterwards."""
    with environment.overridden(
        {name: str(value(policy)) for name, value in HTTP_SETTINGS.items()}
    ):
        yield


def backoff(policy: SourceRetryConfig, retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): doubling, capped."""
    return min(policy.max_backoff_s, policy.backoff_s * 2 ** (retry - 1))


def with_retries(
    source: str,
    system: str,
    policy: SourceRetryConfig,
    attempt: Callable[[], T],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` (one whole load of ``source``) until it succeeds or the bounds are spent.

    A transient failure of ``system`` is retried after a backoff; HTTP failures are not retried
    again here (dlt's client did, per request); anything else is raised at once, unchanged.
    After ``policy.attempts`` failed attempts, raise ``SourceUnavailable``.
    """
    started = time.monotonic()
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except Exception as error:
            detail = system_failure(error)
            if detail is None:
                error.add_note(f"{source}: load failed (not a failing system, so not retried)")
                raise
            seconds = time.monotonic() - started
            if retried_by_client(error):
                raise SourceUnavailable(source, system, policy.attempts, seconds, detail) from error
            if number == policy.attempts:
                raise SourceUnavailable(source, system, number, seconds, detail) from error
            wait = backoff(policy, number)
            log.info(f"{source}: {system} failed (attempt {number} of {policy.attempts}): "
                     f"{detail}; retrying in {wait:.1f} s")  # fmt: skip
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")
