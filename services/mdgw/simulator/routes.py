"""The simulator's HTTP side, on its websocket port (``process_request`` of the server):

- ``ws://host:port/v5/public/{spot|linear|inverse|option|misc/status}``: the websocket
  upgrade goes on (HTTP 404 for another path, 503 while the ``refuse`` fault is on);
- ``GET /v5/market/orderbook?category=&symbol=&limit=``: Bybit's REST order book;
- ``GET /v5/market/full_orderbook?category=&symbol=``: the ``orderbook.full`` snapshot
  (fails as armed by :meth:`~mdgw.simulator.server.SimulatorServer.fail_rest`);
- ``POST /sim/fault?kind=…``: fault switches (:mod:`.faults`), used by the CLI;
- ``POST /sim/system_status?id=&state=&begin=&end=&title=``: post a system.status notice;
- ``GET /sim/status``: connections and their subscriptions;
- ``GET /sim/truth?category=&symbol=&depth=&u=``: the true window of a topic at a u
  (``depth=rpi``: the RPI book, ``depth=full``: the full book).
"""

from __future__ import annotations

import asyncio
import http
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from mdgw.runtime.logging import get_logger
from mdgw.simulator.faults import FaultError, FaultRequest
from mdgw.simulator.instruments import CATEGORIES
from mdgw.simulator.system_status import STATUS_PATH
from mdgw.simulator.topics import DEPTHS, FULL, OPTION_DEPTHS
from mdgw.simulator.truth import TruthUnavailableError

if TYPE_CHECKING:
    from mdgw.simulator.server import SimulatorServer

__all__ = ["PARAMS_ERROR", "REST_LIMIT_MAX", "WS_PREFIX", "HttpRoutes", "json_response"]

WS_PREFIX: Final = "/v5/public/"
REST_LIMIT_MAX: Final = 1000
# Bybit answers REST errors with HTTP 200 and a retCode; 10001 is its "params error".
PARAMS_ERROR: Final = 10001

log = get_logger()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def json_response(status: int, body: object) -> Response:
    payload = orjson.dumps(body)
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(payload))),
            ("Content-Type", "application/json"),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


class HttpRoutes:
    """Answers the HTTP requests of one :class:`~mdgw.simulator.server.SimulatorServer`."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server

    def process_request(self, connection: ServerConnection, request: Request) -> Any:
        """A Response, None (the websocket handshake goes on), or a coroutine giving a
        Response (a ``timeout`` REST fault answers late)."""
        parts = urlsplit(request.path)
        path = parts.path
        if path.startswith(WS_PREFIX):
            if path[len(WS_PREFIX) :] not in (*CATEGORIES, STATUS_PATH):
                return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
            if self.server.refusing():
                log.info("connection_refused", path=path)
                return connection.respond(
                    http.HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n"
                )
            return None  # the websocket handshake goes on
        query = dict(parse_qsl(parts.query))
        routes: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/v5/market/orderbook"): self.orderbook,
            ("GET", "/v5/market/full_orderbook"): self.full_orderbook,
            ("POST", "/sim/fault"): self.fault,
            ("GET", "/sim/status"): self.status,
            ("GET", "/sim/truth"): self.truth,
            ("POST", "/sim/system_status"): self.notice,
        }
        route = routes.get((request.method, path))
        if route is not None:
            return route(query)
        if any(path == known for _, known in routes):
            return json_response(405, {"ok": False, "error": f"{request.method} not allowed"})
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")

    def orderbook(self, query: dict[str, str]) -> Response:
        now_ms = _wall_ms()

        def error(message: str) -> Response:
            body = {
                "retCode": PARAMS_ERROR,
                "retMsg": message,
                "result": {},
                "retExtInfo": {},
                "time": now_ms,
            }
            return json_response(200, body)

        category = query.get("category", "")
        if category not in CATEGORIES:
            return error("Illegal category")
        symbol = query.get("symbol", "")
        if not symbol:
            return error("Param validation for 'symbol' failed on the 'required' tag")
        if not self.server.market.has_symbol(category, symbol):
            return error("params error: Symbol Is Invalid")
        default = 1 if category == "spot" else 25
        limit_text = query.get("limit", str(default))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= REST_LIMIT_MAX:
            return error(f"Param validation for 'limit' failed: must be 1 to {REST_LIMIT_MAX}")
        result = self.server.market.rest_orderbook(category, symbol, int(limit_text), now_ms)
        body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}
        return json_response(200, body)

    def full_orderbook(self, query: dict[str, str]) -> Any:
        server = self.server
        server.rest_requests += 1
        if server.rest_faults:
            kind, seconds = server.rest_faults.pop(0)
            log.info("rest_fault_fired", kind=kind)
            busy = json_response(503, {"retCode": 10016, "retMsg": "service unavailable"})
            if kind == "5xx":
                return busy

            async def late() -> Response:
                await asyncio.sleep(seconds)
                return busy

            return late()
        category = query.get("category", "")
        symbol = query.get("symbol", "")
        now_ms = _wall_ms()
        if category not in ("spot", "linear", "inverse") or not server.market.has_symbol(
            category, symbol
        ):
            body = {"retCode": PARAMS_ERROR, "retMsg": "params error", "result": {}, "time": now_ms}
            return json_response(200, body)
        flushed, result = server.market.rest_full_orderbook(category, symbol, now_ms)
        server.send_frames(flushed)
        body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}
        return json_response(200, body)

    def notice(self, query: dict[str, str]) -> Response:
        try:
            sent = self.server.post_notice(
                notice_id=query.get("id", ""),
                state=query.get("state", ""),
                begin_ms=int(query.get("begin", "0")),
                end_ms=int(query.get("end", "0")),
                title=query.get("title", ""),
            )
        except ValueError as exc:
            return json_response(400, {"ok": False, "error": str(exc)})
        return json_response(200, {"ok": True, "sent": sent})

    def fault(self, query: dict[str, str]) -> Response:
        try:
            request = FaultRequest.from_query(query)
            hit = self.server.apply_fault(request)
        except FaultError as exc:
            return json_response(400, {"ok": False, "error": str(exc)})
        return json_response(200, {"ok": True, "kind": request.kind.value, "hit": hit})

    def status(self, query: dict[str, str]) -> Response:
        body = self.server.status()
        return json_response(200, body)

    def truth(self, query: dict[str, str]) -> Response:
        category = query.get("category", "")
        symbol = query.get("symbol", "")
        depth_text = query.get("depth", "")
        market = self.server.market
        if depth_text == "rpi":
            if not market.has_symbol(category, symbol):
                return json_response(404, {"ok": False, "error": f"no symbol {category}/{symbol}"})
            try:
                u_text = query.get("u")
                rpi_u, bids, asks = market.rpi_truth(
                    category, symbol, int(u_text) if u_text else None
                )
            except ValueError:
                return json_response(400, {"ok": False, "error": "u must be an integer"})
            except TruthUnavailableError as exc:
                return json_response(404, {"ok": False, "error": str(exc)})
            return json_response(200, {"ok": True, "u": rpi_u, "b": bids, "a": asks})
        if depth_text == "full":
            depth_text = str(FULL)
        if not depth_text.isdigit() or int(depth_text) not in (*DEPTHS, *OPTION_DEPTHS, FULL):
            return json_response(400, {"ok": False, "error": "depth must be 1, 50, 200 or 1000"})
        if not self.server.market.has_symbol(category, symbol):
            return json_response(404, {"ok": False, "error": f"no symbol {category}/{symbol}"})
        depth = int(depth_text)
        u_text = query.get("u")
        try:
            u = int(u_text) if u_text else self.server.market.current_u(category, symbol, depth)
            window = self.server.market.truth(category, symbol, depth, u)
        except ValueError:
            return json_response(400, {"ok": False, "error": "u must be an integer"})
        except TruthUnavailableError as exc:
            return json_response(404, {"ok": False, "error": str(exc)})
        body = {"ok": True, "u": window.u, "b": window.bids, "a": window.asks}
        return json_response(200, body)
