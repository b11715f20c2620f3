"""A small local HTTP service standing in for the platform's HTTP source systems.

It serves generated data in the shapes the real APIs use, so the dlt loaders run their real code
path (HTTP, paging, JSON) locally; in production only the base URL and credentials change.

Routes:
  GET /fx/v1/{YYYY-MM-DD}?base=USD&symbols=EUR,GBP   daily reference rates (weekends return the
                                                     previous business day, like public feeds)
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from datetime import date
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from ingestion.sample_data import fx

_FX_DAY = re.compile(r"^/fx/v1/(\d{4}-\d{2}-\d{2})$")


class _Handler(BaseHTTPRequestHandler):
    server: _Service

    def do_GET(self) -> None:
        url = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if match := _FX_DAY.match(url.path):
            self._fx_day(match.group(1), params)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route for {url.path}"})

    def _fx_day(self, day: str, params: dict[str, str]) -> None:
        try:
            requested = date.fromisoformat(day)
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"not a date: {day}"})
            return
        base = params.get("base", "USD").upper()
        symbols = params.get("symbols")
        currencies = symbols.upper().split(",") if symbols else self.server.currencies
        unknown = sorted({*currencies, base} - set(fx.ANCHOR_RATES))
        if unknown:
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": f"unknown currency {unknown}"})
            return
        self._send(HTTPStatus.OK, fx.daily_rates(requested, currencies, base, self.server.seed))

    def _send(self, status: HTTPStatus, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging; the loaders report what they fetched."""


class _Service(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, currencies: list[str], seed: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.currencies = currencies
        self.seed = seed


@contextlib.contextmanager
def serving(currencies: list[str], seed: int = 42, port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the duration of the block; yield the base URL."""
    service = _Service(port, currencies, seed)
    thread = threading.Thread(target=service.serve_forever, name="local-service", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{service.server_address[1]}"
    finally:
        service.shutdown()
        service.server_close()
        thread.join()
