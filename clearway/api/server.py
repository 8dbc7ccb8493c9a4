"""HTTP and WebSocket transports of the API (Starlette on uvicorn), and a server runner.

Routes (Deribit's):

- ``GET /api/v2/{method}?param=value&…`` — e.g. ``/api/v2/public/ticker?instrument_name=
  BTC_USDC-PERPETUAL``; private methods authenticate with the ``deri-hmac-sha256``
  Authorization header (auth.py) or ``Authorization: bearer <access_token>``;
- ``POST /api/v2`` (and ``/api/v2/{method}``) with a JSON-RPC request (or a batch of up to
  20) as the body;
- ``GET /ws/api/v2`` upgraded to a WebSocket: JSON-RPC requests in, answers and
  subscription notifications out.

Protection: requests larger than ``ApiConfig.max_message_bytes`` (HTTP bodies:
``max_http_body``) are answered with -32600 and not parsed; frames beyond
``ws_max_frame_bytes`` close the connection (uvicorn); rate limits per key (ratelimit.py);
each WebSocket connection has a bounded outgoing queue and a client that stops reading is
disconnected when it overflows (the server never waits for one client). Any exception in
a method is answered as -32603 and logged; the server keeps serving.

Concurrency: one asyncio loop (uvicorn's) runs all of this and the read model; the node
runs its own threads. A WebSocket connection's requests are dispatched in arrival order
(their commands reach the sequencer in that order) and answered as they complete.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import socket
import threading
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clearway.api import methods as _methods  # noqa: F401  (registers the methods)
from clearway.api import advanced as _advanced  # noqa: F401  (TWAP and batch cancel methods)
from clearway.api.errors import INVALID_REQUEST, ApiError, unauthorized
from clearway.api.rpc import (
    MAX_BATCH, Acked, Context, call, check_request, encode, envelope, internal_error, parse_message, safe_id,
)
from clearway.api.service import Api, ApiConfig
from clearway.api.wsproto import CoalescingWebSocketProtocol
from clearway.api.wsproto import protocol_class as ws_protocol_class

log = logging.getLogger("clearway.api")

_JSON = "application/json"
WS_PATH = "/ws/api/v2"


def _too_big(limit: int) -> ApiError:
    return ApiError(INVALID_REQUEST, "Invalid Request", {"reason": f"message larger than {limit} bytes"})


class Connection:
    """One WebSocket client: its context (API key once authenticated), its subscriptions
    and its bounded outgoing queue."""

    def __init__(self, api: Api, receive, send, remote: object) -> None:
        self.api = api
        self._receive = receive  # the raw ASGI callables (no Starlette wrapper per message)
        self._send = send
        # uvicorn passes its protocol's bound ``send``: with the coalescing protocol
        # (wsproto.py) messages arrive straight from data_received and an answer can be
        # queued synchronously when nothing waits before it.
        protocol = getattr(send, "__self__", None)
        self._protocol = protocol if isinstance(protocol, CoalescingWebSocketProtocol) else None
        self.key = None
        self.ctx = Context(self, None, remote, "ws")
        self.channels: dict[str, str | None] = {}
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self.closed = False
        self.slow = False
        self._main: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._acks: collections.deque[tuple[object, int, Acked]] = collections.deque()
        self._ack_waiting = False  # _acknowledge is registered with the node for the oldest
        self._loop = asyncio.get_running_loop()

    def send(self, obj) -> None:
        self.send_bytes(encode(obj))

    def send_bytes(self, data: bytes) -> None:
        if self.closed:
            return
        config = self.api.config
        if len(self._queue) >= config.ws_queue_max_messages or self._queued_bytes > config.ws_queue_max_bytes:
            self._overflow()
            return
        if not self._queue and self._protocol is not None and self._protocol.send_text_now(data):
            return  # nothing queued before it: straight to the protocol, no writer task turn
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wake.set()

    def _overflow(self) -> None:
        log.warning("closing a WebSocket client that stopped reading (%d messages queued)", len(self._queue))
        self.slow = True
        self.closed = True
        self._queue.clear()
        self.api.hub.drop(self)
        if self._main is not None:
            self._main.cancel()

    async def writer(self) -> None:
        ws_send = self._send
        queue = self._queue
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            while queue and not self.closed:
                # left in the queue until sent: while this waits for a paused socket, later
                # messages queue behind it instead of overtaking it through send_text_now
                data = queue[0]
                try:
                    await ws_send({"type": "websocket.send", "text": data.decode()})
                except Exception:  # the client went away (uvicorn's ClientDisconnected)
                    self.closed = True
                    return
                if queue and queue[0] is data:  # (an overflow may have cleared it meanwhile)
                    queue.popleft()
                    self._queued_bytes -= len(data)

    async def run(self) -> None:
        """Receive loop; returns when the client goes or is dropped."""
        self._main = asyncio.current_task()
        writer = self._loop.create_task(self.writer())
        receive = self._receive
        if self._protocol is not None:  # text messages come straight from data_received (wsproto.py)
            self._protocol.text_handler = self.receive_text
            self._protocol.messages_done = self.api.release_held
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                text = message.get("text")
                self.receive_text(text if text is not None else message.get("bytes") or b"")
        except asyncio.CancelledError:
            if not self.slow:
                raise
        finally:
            if self._protocol is not None:
                self._protocol.text_handler = self._protocol.messages_done = None
            self.closed = True
            writer.cancel()
            for task in self._tasks:
                task.cancel()
            self.api.hub.drop(self)
            self.api.limiter.forget(self.ctx.remote)

    def receive_text(self, text: str | bytes) -> None:
        """One incoming message: refused whole beyond ``max_message_bytes``, else
        handled; never raises (a failure is logged, the connection keeps serving)."""
        if self.closed:
            return
        limit = self.api.config.max_message_bytes
        if len(text) > limit:
            self.send(envelope(None, _now_us(), error=_too_big(limit)))
            return
        try:
            self.handle(text)
        except Exception:  # pragma: no cover - handle answers its own errors
            log.exception("WebSocket message handling failed")

    def handle(self, text: str | bytes) -> None:
        us_in = _now_us()
        try:
            request = parse_message(text)
        except ApiError as exc:
            self.send(envelope(None, us_in, error=exc))
            return
        if isinstance(request, list):
            if not request or len(request) > MAX_BATCH:
                self.send(envelope(None, us_in, error=ApiError(INVALID_REQUEST, "Invalid Request",
                                                                {"reason": f"batch of 1..{MAX_BATCH} requests"})))
                return
            for item in request:
                self.one(item, us_in)
            return
        self.one(request, us_in)

    def one(self, request, us_in: int) -> None:
        request_id = safe_id(request)
        try:
            request_id, name, params = check_request(request)
            result = call(self.api, self.ctx, name, params)
        except ApiError as exc:
            self.send(envelope(request_id, us_in, error=exc))
            return
        except Exception as exc:  # a bug in a method: answer, log, keep serving
            self.send(envelope(request_id, us_in, error=internal_error(exc)))
            return
        if type(result) is Acked:
            self._acks.append((request_id, us_in, result))
            if not self._ack_waiting:
                self._acknowledge()
        elif inspect.isawaitable(result):
            task = self._loop.create_task(self.finish(request_id, us_in, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.send(envelope(request_id, us_in, result))

    def _acknowledge(self) -> None:
        """Answer the connection's command-backed requests (``Acked``) in submission
        order: every one whose ticket is done, then, if some are left, ask the node to
        call this again on the loop when the oldest one's batch is done (one call per
        batch, no Future or Task per request). Tickets of one connection complete in the
        order they were submitted (batches commit in order)."""
        self._ack_waiting = False
        try:
            self._answer_done()
        finally:
            if self._protocol is not None and not self.closed:
                self._protocol.flush_now()  # the answers leave now, not after what the loop runs next

    def _answer_done(self) -> None:
        acks = self._acks
        while acks:
            ticket = acks[0][2].ticket
            if not ticket.done():
                if self.closed:
                    acks.clear()
                    return
                if ticket.call_when_done(self._loop, self._acknowledge):
                    self._ack_waiting = True
                    return
            request_id, us_in, acked = acks.popleft()
            try:
                self.send(envelope(request_id, us_in, acked.resolve()))
            except ApiError as exc:
                self.send(envelope(request_id, us_in, error=exc))
            except Exception as exc:  # building or encoding the answer: answer, log, go on
                self.send(envelope(request_id, us_in, error=internal_error(exc)))

    async def finish(self, request_id, us_in: int, pending) -> None:
        try:
            result = await pending
        except ApiError as exc:
            self.send(envelope(request_id, us_in, error=exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.send(envelope(request_id, us_in, error=internal_error(exc)))
        else:
            self.send(envelope(request_id, us_in, result))


def _now_us() -> int:
    return time.time_ns() // 1000


def _remote(scope) -> object:
    client = scope.get("client")
    return client[0] if client else "?"


class Transport:
    """The Starlette routes over one :class:`Api`."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def ws_asgi(self, scope, receive, send) -> None:
        """The WebSocket endpoint as a plain ASGI application (server.py's ``create_app``
        routes ``/ws/api/v2`` here before Starlette: its per-message wrappers are not on
        the order path)."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        connection = Connection(self.api, receive, send, None)
        connection.ctx.remote = ("ws", id(connection))
        await connection.run()

    async def get(self, request: Request) -> Response:
        us_in = _now_us()
        api = self.api
        scope = request.scope
        query = scope.get("query_string", b"")
        if len(query) > api.config.max_message_bytes:
            return _respond(envelope(None, us_in, error=_too_big(api.config.max_message_bytes)))
        name = request.path_params["method"]
        params = {k: v for k, v in request.query_params.multi_items()}
        raw_path = scope.get("raw_path") or scope["path"].encode()
        uri = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        return await self._dispatch(request, us_in, None, name, params, "GET", uri, "")

    async def post(self, request: Request) -> Response:
        us_in = _now_us()
        limit = self.api.config.max_http_body
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _respond(envelope(None, us_in, error=_too_big(limit)))
        try:
            payload = parse_message(bytes(body))
        except ApiError as exc:
            return _respond(envelope(None, us_in, error=exc))
        scope = request.scope
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        uri = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        text = body.decode("utf-8", "replace")
        path_method = request.path_params.get("method")
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_BATCH:
                return _respond(envelope(None, us_in, error=ApiError(INVALID_REQUEST, "Invalid Request",
                                                                    {"reason": f"batch of 1..{MAX_BATCH}"})))
            answers = []
            for item in payload:
                answers.append(await self._one(request, us_in, item, None, uri, text))
            return Response(encode(answers), 200, media_type=_JSON)
        if path_method and isinstance(payload, dict) and "method" not in payload:
            payload = {"jsonrpc": "2.0", "id": None, "method": path_method, "params": payload}
        answer = await self._one(request, us_in, payload, path_method, uri, text)
        return _respond(answer)

    async def _one(self, request, us_in, payload, path_method, uri, body) -> dict:
        request_id = safe_id(payload)
        try:
            request_id, name, params = check_request(payload)
        except ApiError as exc:
            return envelope(request_id, us_in, error=exc)
        if path_method and name != path_method:
            return envelope(request_id, us_in, error=ApiError(INVALID_REQUEST, "Invalid Request",
                                                              {"reason": "method differs from the URL"}))
        response = await self._dispatch(request, us_in, request_id, name, params, "POST", uri, body)
        return response.envelope

    async def _dispatch(self, request: Request, us_in: int, request_id, name: str, params: dict, http_method: str,
                        uri: str, body: str) -> Response:
        api = self.api
        try:
            key = None
            header = request.headers.get("authorization")
            if header:
                lowered = header[:20].lower()
                if lowered.startswith("deri-hmac-sha256"):
                    key = api.keys.verify_rest(header, http_method, uri, body)
                elif lowered.startswith("bearer "):
                    key = api.keys.bearer(header[7:].strip())
                else:
                    raise unauthorized("unsupported Authorization scheme")
            ctx = Context(None, key, _remote(request.scope), "http")
            result = call(api, ctx, name, params)
            if inspect.isawaitable(result):
                result = await result
            answer = envelope(request_id, us_in, result)
        except ApiError as exc:
            answer = envelope(request_id, us_in, error=exc)
        except Exception as exc:
            answer = envelope(request_id, us_in, error=internal_error(exc))
        return _respond(answer)


def _respond(answer: dict) -> Response:
    response = Response(encode(answer), 400 if "error" in answer else 200, media_type=_JSON)
    response.envelope = answer  # type: ignore[attr-defined]
    return response


def create_app(api: Api):
    """The ASGI application of ``api``: WebSocket ``/ws/api/v2`` served directly
    (Transport.ws_asgi), everything else (HTTP routes, the lifespan that starts and
    stops the read model) by Starlette."""
    transport = Transport(api)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        api.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            api.stop()

    routes = [
        Route("/api/v2", transport.post, methods=["POST"]),
        Route("/api/v2/{method:path}", transport.get, methods=["GET"]),
        Route("/api/v2/{method:path}", transport.post, methods=["POST"]),
    ]
    async def not_found(request, exc):
        error = ApiError(INVALID_REQUEST, "Invalid Request",
                         {"reason": f"no route {request.method} {request.url.path[:64]}; use /api/v2/{{method}}"})
        return Response(encode(envelope(None, _now_us(), error=error)), getattr(exc, "status_code", 404),
                        media_type=_JSON)

    starlette = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    ws_asgi = transport.ws_asgi

    async def app(scope, receive, send):
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            await ws_asgi(scope, receive, send)
        else:
            await starlette(scope, receive, send)

    app.state = starlette.state  # type: ignore[attr-defined]
    return app  # type: ignore[return-value]


class ApiServer:
    """Serve the API of ``node`` on ``host:port`` (port 0: an ephemeral port) from a
    background thread (``start``) or the calling thread (``serve``).

    ``url`` / ``ws_url`` are the base URLs once started. Only loopback addresses are
    used by tests and benchmarks; binding elsewhere is the operator's choice.
    """

    def __init__(self, node, config: ApiConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 keys=None, loop: str = "auto") -> None:
        import uvicorn

        self.api = Api(node, config, keys)
        self.app = create_app(self.api)
        self.host = host
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        cfg = self.api.config
        self.uvicorn_config = uvicorn.Config(
            self.app, loop=loop, http="h11" if loop == "asyncio" else "auto", ws=ws_protocol_class(),
            ws_max_size=cfg.ws_max_frame_bytes, ws_per_message_deflate=False, ws_ping_interval=20.0,
            proxy_headers=False, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.uvicorn_config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/ws/api/v2"

    def start(self, timeout: float = 30.0) -> "ApiServer":
        """Serve from a daemon thread; return once listening."""
        self._thread = threading.Thread(target=self.serve, name="clearway-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("API server did not start")
            time.sleep(0.01)
        return self

    def serve(self) -> None:
        """Serve in the calling thread until ``stop`` (or SIGINT/SIGTERM in the main thread)."""
        self._socket.listen(2048)
        self.server.run(sockets=[self._socket])

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._socket.close()
        except OSError:
            pass

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
