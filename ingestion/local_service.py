"""A small local HTTP service standing in for the platform's HTTP source systems.

It serves a generated ``World`` in the shapes the real APIs use, so the dlt loaders run their real
code path (HTTP, paging, filters, JSON) locally; in production only the base URL and the token
change.

Routes:
  GET /fx/v1/{YYYY-MM-DD}?base=USD&symbols=EUR,GBP
      daily reference rates; weekends answer with the previous business day, like public feeds;
      corrections to past days come from a JSON file (lakehouse.systems.fx_corrections_file)
  GET /crm/v1/{contacts|accounts}?updated_since=ISO-8601&page=1&page_size=200
      CRM records changed at or after ``updated_since``, oldest first, paged:
      {"data": [...], "page": 1, "page_size": 200, "total_pages": 7, "total": 1234}
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ingestion.sample_data import fx
from ingestion.sample_data.world import World

_FX_DAY = re.compile(r"^/fx/v1/(\d{4}-\d{2}-\d{2})$")
_CRM = re.compile(r"^/crm/v1/(contacts|accounts)$")


class _Handler(BaseHTTPRequestHandler):
    server: _Service

    def do_GET(self) -> None:
        url = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
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

    def _send(self, status: HTTPStatus, body: dict) -> None:
        self._send_raw(status, json.dumps(body).encode())

    def _send_raw(self, status: HTTPStatus, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

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
