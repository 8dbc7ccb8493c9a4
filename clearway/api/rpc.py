"""The JSON-RPC 2.0 dispatcher shared by the three transports (``GET /api/v2/{method}``,
``POST /api/v2``, WebSocket ``/ws/api/v2``).

A request is ``{"jsonrpc": "2.0", "id": …, "method": "public/ticker", "params": {…}}``;
the answer carries the same ``id`` and either ``result`` or ``error`` (errors.py), plus
Deribit's ``usIn`` / ``usOut`` / ``usDiff`` (µs) and ``testnet``. Every request is
answered, a notification (no ``id``) and garbage included (``id`` null): hostile input
gets an error, never a crash and never a state change.

Methods are registered with :func:`method` and implemented in methods.py. A handler is
called synchronously (so that a connection's commands reach the sequencer in the order
the client sent them) and returns either the result or an awaitable of it (waiting for
the acknowledgement runs concurrently with the next requests).

Parameters: over GET they arrive as strings; :class:`Params` converts them to the
declared type (``"true"`` → True, ``"25"`` → 25) and refuses what does not fit with
-32602 ``Invalid params`` naming the parameter.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec

from clearway.api.errors import (
    INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, SYSTEM_MAINTENANCE, TOO_MANY_REQUESTS, ApiError,
    invalid_params, unauthorized,
)
from clearway.engine.errors import NodeFailed

log = logging.getLogger("clearway.api")

MAX_BATCH = 20
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


@dataclass(frozen=True)
class MethodSpec:
    name: str
    handler: Callable
    private: bool      # needs an authenticated API key
    matching: bool     # draws on the matching-engine rate pool
    write: bool        # submits commands (refused for read-only keys)


METHODS: dict[str, MethodSpec] = {}


def method(name: str, private: bool = False, matching: bool = False, write: bool = False):
    """Register a handler ``f(api, ctx, params) -> result | Awaitable[result]``."""
    def register(fn):
        METHODS[name] = MethodSpec(name, fn, private, matching, write)
        return fn
    return register


class Params:
    """Typed access to a request's parameters (a dict of JSON values or of strings)."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def str(self, name: str, default: str | None = None, required: bool = False, max_len: int = 128) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise invalid_params(name, "missing")
            return default
        if not isinstance(value, str) or len(value) > max_len:
            raise invalid_params(name, f"must be a string of at most {max_len} characters")
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if value in ("true", "True", "1"):
            return True
        if value in ("false", "False", "0"):
            return False
        raise invalid_params(name, "must be a boolean")

    def int(self, name: str, default: int | None = None, required: bool = False, lo: int = 0,
            hi: int = 2**63 - 1) -> int | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise invalid_params(name, "missing")
            return default
        if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 20:
            value = int(value)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise invalid_params(name, f"must be an integer in [{lo}, {hi}]")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return default
        if value not in choices:
            raise invalid_params(name, "one of " + ", ".join(choices))
        return value

    def list(self, name: str, max_items: int = 100) -> list:
        value = self.raw.get(name)
        if isinstance(value, str):  # GET: a JSON array or a comma-separated list
            if value.startswith("["):
                try:
                    value = _decoder.decode(value)
                except msgspec.DecodeError:
                    raise invalid_params(name, "not a JSON array") from None
            else:
                value = [v for v in value.split(",") if v]
        if not isinstance(value, list) or len(value) > max_items:
            raise invalid_params(name, f"must be a list of at most {max_items} items")
        return value


class Context:
    """Who is calling and over what: the transport's session (a WebSocket connection or
    one HTTP request), its API key once authenticated, and its address for anonymous
    rate limiting."""

    __slots__ = ("conn", "key", "remote", "transport", "pending")

    def __init__(self, conn: Any, key: Any, remote: object, transport: str) -> None:
        self.conn = conn
        self.key = key
        self.remote = remote
        self.transport = transport  # "ws" | "http"
        self.pending = None  # last Ticket this context submitted (read-your-writes)


def envelope(request_id: Any, us_in: int, result: Any = None, error: ApiError | None = None) -> dict:
    us_out = time.time_ns() // 1000
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        out["error"] = error.to_json()
    else:
        out["result"] = result
    out.update(usIn=us_in, usOut=us_out, usDiff=us_out - us_in, testnet=False)
    return out


def parse_message(text: str | bytes) -> Any:
    """Decode a JSON text; ApiError -32700 if it is not JSON."""
    try:
        return _decoder.decode(text)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise ApiError(PARSE_ERROR, "Parse error", {"reason": "invalid JSON"}) from None


def check_request(request: Any) -> tuple[Any, str, dict]:
    """(id, method, params) of a JSON-RPC request object; ApiError -32600 / -32602 otherwise.
    The id is echoed only if it is a string, a number or null."""
    if not isinstance(request, dict):
        raise ApiError(INVALID_REQUEST, "Invalid Request", {"reason": "not an object"})
    request_id = request.get("id")
    if not (request_id is None or isinstance(request_id, (str, int, float)) and not isinstance(request_id, bool)):
        raise ApiError(INVALID_REQUEST, "Invalid Request", {"reason": "bad id"})
    if isinstance(request_id, str) and len(request_id) > 128:
        raise ApiError(INVALID_REQUEST, "Invalid Request", {"reason": "id too long"})
    version = request.get("jsonrpc", "2.0")
    if version != "2.0":
        raise ApiError(INVALID_REQUEST, "Invalid Request", {"reason": "jsonrpc must be 2.0"})
    name = request.get("method")
    if not isinstance(name, str) or len(name) > 128:
        raise ApiError(INVALID_REQUEST, "Invalid Request", {"reason": "method must be a string"})
    params = request.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise invalid_params("params", "must be an object")
    return request_id, name, params


def safe_id(request: Any) -> Any:
    """The id of a (possibly invalid) request, if it is echoable, else None."""
    if isinstance(request, dict):
        request_id = request.get("id")
        if isinstance(request_id, (str, int, float)) and not isinstance(request_id, bool):
            if not isinstance(request_id, str) or len(request_id) <= 128:
                return request_id
    return None


def call(api, ctx: Context, name: str, raw_params: dict) -> Any:
    """Run one method: lookup, authentication, rate limit, handler. Returns the result or
    an awaitable of it; raises ApiError."""
    spec = METHODS.get(name)
    if spec is None:
        raise ApiError(METHOD_NOT_FOUND, "Method not found", {"reason": f"unknown method {name[:64]}"})
    params = Params(raw_params)
    key = ctx.key
    if key is not None and key.revoked:
        key = ctx.key = None
        if ctx.conn is not None:
            ctx.conn.key = None
    if key is None and "access_token" in raw_params:
        key = api.keys.bearer(raw_params.get("access_token"))
        ctx.key = key
    if spec.private:
        if key is None:
            raise unauthorized("authentication required")
        if spec.write and key.scope != "trade":
            raise ApiError(13021, "forbidden", {"reason": "read-only api key"})
    if not api.limiter.allow(key.client_id if key is not None else None, ctx.remote, spec.matching):
        raise ApiError(TOO_MANY_REQUESTS, "too_many_requests", {"reason": "rate limit exceeded"})
    return spec.handler(api, ctx, params)


class Acked:
    """A method's answer that needs one command's acknowledgement: ``finish(events)``
    builds the result (or raises ApiError) once ``ticket`` is done. The WebSocket
    transport answers these in submission order from one task per connection
    (server.py ``Connection._acknowledge``); anything else just awaits it."""

    __slots__ = ("ticket", "finish")

    def __init__(self, ticket, finish: Callable[[list], Any]) -> None:
        self.ticket = ticket
        self.finish = finish

    def resolve(self) -> Any:
        """The result, the ticket being done. Raises ApiError (a node that failed before
        the command was durable: 11051 system_maintenance)."""
        try:
            events = self.ticket.result(0)
        except NodeFailed as exc:
            raise ApiError(SYSTEM_MAINTENANCE, "system_maintenance", {"reason": str(exc)}) from None
        return self.finish(events)

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self) -> Any:
        try:
            await self.ticket
        except NodeFailed:
            pass
        return self.resolve()


async def resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def internal_error(exc: BaseException) -> ApiError:
    log.exception("internal error in an API method", exc_info=exc)
    return ApiError(INTERNAL_ERROR, "Internal error", {"reason": type(exc).__name__})


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


Handler = Callable[..., Any | Awaitable[Any]]
