"""A small local HTTP service standing in for the platform's HTTP source systems.

It serves a generated ``World`` in the shapes the real APIs use, so the dlt loaders run their real
code path (HTTP, paging, filters, JSON) locally; in production only the base URL and the token
change.

Routes:
  GET /fx/v1/{YYYY-MM-DD}?base=USD&symbols=EUR,GBP
      daily reference rates; weekends answer with the previous business day, like public feeds;
      corrections to past days come from a JSON file
      (lakehouse.stack.source_systems.fx_corrections_file)
  GET /crm/v1/{contacts|accounts}?updated_since=ISO-8601&page=1&page_size=200
      CRM records changed at or after ``updated_since``, oldest first, paged:
      {"data": [...], "page": 1, "page_size": 200, "total_pages": 7, "total": 1234}

Test hook, off by default: ``service.faults`` scripts failures per route (answer 503 or 429 with
Retry-After, stall past the client's timeout, cut the connection half-way through a body), so
tests can make a real HTTP source system fail on demand (tests/fast/test_source_failures.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from lakehouse.stack.sample_data import fx
from lakehouse.stack.sample_data.world import World

_FX_DAY = re.compile(r"^/fx/v1/(\d{4}-\d{2}-\d{2})$")
_CRM = re.compile(r"^/crm/v1/(contacts|accounts)$")


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour of the service (a test hook; the service has none by default).

    ``status``: answer this status (with ``Retry-After: retry_after`` if set) instead of data.
    ``stall_s``: wait this long before answering normally (past the client's timeout).
    ``cut``: send the headers and half the body, then reset the connection.
    """

    status: int | None = None
    retry_after: str | None = None
    stall_s: float = 0.0
    cut: bool = False

    @property
    def kind(self) -> str:
        return "cut" if self.cut else "stall" if self.stall_s else f"status {self.status}"


@dataclass
class _Script:
    route: str  # a path prefix, e.g. /crm/v1/contacts
    params: dict[str, str]  # query parameters the request must have, e.g. {"page": "2"}
    fault: Fault
    times: int | None  # None: every matching request, until cleared


@dataclass
class Faults:
    """Per-route scripts of faults: the next ``times`` matching requests get ``fault``."""

    scripts: list[_Script] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)  # faults served, by kind
    # every request seen: (time.monotonic(), path, query), so a test can check when retries came
    requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, route: str, fault: Fault, times: int | None = 1, **params: str) -> None:
        """Script ``fault`` for the next ``times`` requests (None: all) under ``route``."""
        with self._lock:
            self.scripts.append(_Script(route, params, fault, times))

    def clear(self) -> None:
        with self._lock:
            self.scripts.clear()

    def take(self, path: str, params: dict[str, str]) -> Fault | None:
        """The fault for this request, if one is scripted (used up once per request)."""
        with self._lock:
            self.requests.append((time.monotonic(), path, params))
            for script in self.scripts:
                if not path.startswith(script.route):
                    continue
                if any(params.get(k) != v for k, v in script.params.items()):
                    continue
                if script.times is not None:
                    script.times -= 1
                    if script.times == 0:
                        self.scripts.remove(script)
                self.injected[script.fault.kind] += 1
                return script.fault
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _Service

    def do_GET(self) -> None:
        url = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        fault = self.server.faults.take(url.path, params)
        if fault is not None and fault.stall_s:
            time.sleep(fault.stall_s)  # then answer: the client has given up by now
        if fault is not None and fault.status is not None:
            self._send(HTTPStatus(fault.status), {"error": "injected fault"}, fault.retry_after)
            return
        self._cut = fault is not None and fault.cut
        if match := _FX_DAY.match(url.path):
            self._fx_day(match.group(1), params)
        elif match := _CRM.match(url.path):
            self._crm(match.group(1), params)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route for {url.path}"})

    def _fx_day(self, day: str, params: dict[str, str]) -> None:
        try:
            requested = date.fromisoformat(day)
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"not a date: {day}"})
            return
        world = self.server.world
        base = params.get("base", "USD").upper()
        symbols = params.get("symbols")
        currencies = symbols.upper().split(",") if symbols else world.currencies
        unknown = sorted({*currencies, base} - set(fx.ANCHOR_RATES))
        if unknown:
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": f"unknown currency {unknown}"})
            return
        if requested > world.end_date:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no rates published for {day} yet"})
            return
        published = fx.published_day(requested)
        rates = {c: world.fx_rate(published, c, base) for c in currencies if c != base}
        corrected = self.server.corrections().get(base, {}).get(published.isoformat(), {})
        rates.update({c: v for c, v in corrected.items() if c in rates})
        body = {"amount": 1.0, "base": base, "date": published.isoformat(), "rates": rates}
        self._send(HTTPStatus.OK, body)

    def _crm(self, entity: str, params: dict[str, str]) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
            return
        try:
            since = (
                datetime.fromisoformat(params["updated_since"])
                if "updated_since" in params
                else None
            )
            page = int(params.get("page", 1))
            size = int(params.get("page_size", 100))
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        records = (
            self.server.world.crm_contacts
            if entity == "contacts"
            else self.server.world.crm_accounts
        )
        key = "contact_id" if entity == "contacts" else "account_id"
        selected = sorted(
            (r for r in records if since is None or r["updated_at"] >= since),
            key=lambda r: (r["updated_at"], str(r[key])),
        )
        total_pages = max(1, math.ceil(len(selected) / size))
        chunk = selected[(page - 1) * size : page * size]
        self.server.served[entity] += len(chunk)
        body = {
            "data": [{**r, "updated_at": r["updated_at"].isoformat()} for r in chunk],
            "page": page,
            "page_size": size,
            "total_pages": total_pages,
            "total": len(selected),
        }
        extra = self.server.extra_crm.get(entity, []) if page == 1 else []
        if not extra:
            self._send(HTTPStatus.OK, body)
            return
        # records as raw JSON text, spliced into page 1's data array as sent (tests: hostile ones)
        head = json.dumps(body["data"])[:-1]
        data = head + (", " if body["data"] else "") + ", ".join(extra) + "]"
        rest = json.dumps({k: v for k, v in body.items() if k != "data"})[1:]
        self._send_raw(HTTPStatus.OK, f'{{"data": {data}, {rest}'.encode("utf-8", "surrogatepass"))

    def _send(self, status: HTTPStatus, body: dict, retry_after: str | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), retry_after)

    def _send_raw(self, status: HTTPStatus, payload: bytes, retry_after: str | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            if getattr(self, "_cut", False):
                self.wfile.write(payload[: len(payload) // 2])
                # a reset (RST), not a clean close: what a crashing server or proxy does
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
                self.close_connection = True
                return
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a stall past its timeout)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging; the loaders report what they fetched."""


class _Service(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, world: World, token: str, corrections: Path | None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.world = world
        # entity -> records as raw JSON text, appended to the first page of every CRM answer
        self.extra_crm: dict[str, list[str]] = {}
        self.token = token
        self.corrections_file = corrections
        self.served: Counter[str] = Counter()  # records sent per route, for tests and debugging
        self.faults = Faults()  # test hook: scripted failures, none unless a test adds them
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def corrections(self) -> dict[str, dict[str, dict[str, float]]]:
        """Rates the publisher corrected after the fact: ``{base: {day: {currency: rate}}}``,
        read on every request from the corrections file (a real feed revises old days too;
        this is how a backfill is exercised locally)."""
        path = self.corrections_file
        return json.loads(path.read_text()) if path and path.exists() else {}


@contextlib.contextmanager
def serving(
    world: World, token: str = "local-crm-token", port: int = 0, corrections: Path | None = None
) -> Iterator[str]:
    """Serve ``world`` in a background thread for the block; yield the base URL."""
    with serving_service(world, token, port, corrections) as service:
        yield service.url


@contextlib.contextmanager
def serving_service(
    world: World, token: str = "local-crm-token", port: int = 0, corrections: Path | None = None
) -> Iterator[_Service]:
    """Like ``serving`` but yield the service itself (its ``url``, ``served`` counts, ``world``)."""
    service = _Service(port, world, token, corrections)
    thread = threading.Thread(target=service.serve_forever, name="local-service", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.shutdown()
        service.server_close()
        thread.join()
