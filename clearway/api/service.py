"""The API service: configuration, the pieces it is made of, and the interfaces through
which the layers this package may not import (commitment, chain) plug in.

``Api`` ties together the node (the only way state changes), the read model, the key
store, the rate limiter and the subscription hub; methods.py implements the JSON-RPC
methods on it and server.py exposes it over HTTP and WebSocket.

Pluggable (DESIGN.md "Layers": the API imports the engine and the domain only):

- :class:`CommandSigning` verifies EIP-712 signatures of account commands (orders,
  cancels, withdrawals). The typed messages are those of the batch data
  (``clearway.commitment.authorisation``); the wiring passes an adapter over
  ``recover_signer`` / ``typed_data`` with the deployment's domain. Without one, signed
  orders and withdrawal requests are refused with 10033 ``not_implemented``.
- :class:`Settlement` reports the L1 side: chain and vault, deposit address, batches and
  state roots. Without one, those methods answer what the node knows and say
  ``"available": false`` for the rest.
- ``on_authorised(seq, command, owner, nonce, signature)`` is called for every signed
  command once it is durable, so the batcher can post its signature with it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from clearway.api.auth import KeyStore, wall_ms
from clearway.api.ratelimit import Limits, RateLimiter
from clearway.api.readmodel import ReadModel


class CommandSigning(Protocol):
    """EIP-712 signatures of account commands (see the module docstring)."""

    def recover(self, command: Any, owner: str, nonce: int, signature: bytes) -> str | None:
        """The address that signed ``command`` as ``owner``'s with ``nonce``, or None."""

    def typed_data(self, command: Any, owner: str, nonce: int) -> dict:
        """The full EIP-712 typed data a wallet signs for ``command``."""


class Settlement(Protocol):
    """The L1 side as the API reports it (every method may raise; the API then reports
    the failure as unavailable)."""

    def l1_info(self) -> dict:
        """Chain id, vault and token addresses, confirmations, backend description…"""

    def batch_status(self) -> dict:
        """Batches submitted and finalised, latest roots, the last sequence committed…"""

    def state_root(self, state) -> str | None:
        """Hex state root of the live state (run on the sequencer), or None."""


@dataclass
class ApiConfig:
    """Limits and plug-ins of the API (defaults suit a single node)."""

    max_message_bytes: int = 32_768          # larger requests get -32600 (Deribit: 32 KiB)
    max_http_body: int = 65_536
    ws_max_frame_bytes: int = 1 << 20        # uvicorn drops connections sending more
    ws_queue_max_messages: int = 20_000      # outgoing messages queued for one connection
    ws_queue_max_bytes: int = 16 << 20       # … or bytes; beyond either: slow client, closed
    limits: Limits = field(default_factory=Limits)
    auth_window_ms: int = 60_000
    chain_id: int = 1                        # EIP-712 domain of API-key messages
    keys_path: Path | None = None
    signing: CommandSigning | None = None
    settlement: Settlement | None = None
    on_authorised: Callable[..., None] | None = None
    wait_timeout_s: float = 10.0
    clock: Callable[[], int] = wall_ms


class Api:
    """The service (see the module docstring). Created by server.py; every method runs
    on the server's event loop."""

    def __init__(self, node, config: ApiConfig | None = None, keys: KeyStore | None = None) -> None:
        from clearway.api.subscriptions import Hub

        self.node = node
        self.config = config or ApiConfig()
        self.keys = keys or KeyStore(self.config.keys_path, self.config.chain_id, self.config.auth_window_ms,
                                     self.config.clock)
        self.limiter = RateLimiter(self.config.limits)
        self.hub = Hub(self)
        self.model = ReadModel(node, self.hub.on_changes)
        self.used_nonces: dict[tuple[str, int], None] = {}
        self._nonce_order: collections.deque = collections.deque()
        self.signed: dict[int, tuple[str, int, bytes]] = {}  # seq → (owner, nonce, signature), recent
        self._loop = None
        self._release_scheduled = False

    def start(self, loop) -> None:
        self._loop = loop
        self.model.start(loop)

    def submit(self, command):
        """Submit ``command`` to the node; its Ticket. Raises CommandRejected.

        The commands submitted during one turn of the event loop are held and released
        together right after it (``Node.release``; sooner through ``release_held``): a
        burst of requests read at once becomes one batch — one sequencing pass, one
        completion and one wake-up of the loop — instead of a batch per request, which
        the sequencer thread would otherwise cut whenever it got the GIL. Measured on the
        2-core bench VM: server CPU per order at saturation ~75 → ~50 µs."""
        if self._loop is None:  # not serving yet (or tests without a loop)
            return self.node.submit(command)
        ticket = self.node.submit(command, hold=True)
        if not self._release_scheduled:
            self._release_scheduled = True
            self._loop.call_soon(self._release)
        return ticket

    def _release(self) -> None:
        self._release_scheduled = False
        self.node.release()

    def release_held(self) -> None:
        """Release what this loop turn holds now rather than when the turn ends: for a
        transport that has handled everything one read brought (a WebSocket's
        ``data_received``), so nothing else the loop runs first delays the batch. The
        call already scheduled by ``submit`` then finds nothing held (harmless)."""
        if self._release_scheduled:
            self._release()

    def stop(self) -> None:
        self.model.stop()
        self.hub.close_all()

    def account_id(self, owner: str) -> int | None:
        return self.model.owners.get(owner)

    def use_nonce(self, owner: str, nonce: int) -> bool:
        """Accept each (owner, nonce) of a signed command once (verifiers do the same with
        the batch data). Bounded memory: the oldest 10⁶ are forgotten first."""
        key = (owner, nonce)
        if key in self.used_nonces:
            return False
        self.used_nonces[key] = None
        self._nonce_order.append(key)
        if len(self._nonce_order) > 1_000_000:
            self.used_nonces.pop(self._nonce_order.popleft(), None)
        return True

    def record_signed(self, seq: int, command, owner: str, nonce: int, signature: bytes) -> None:
        self.signed[seq] = (owner, nonce, signature)
        if len(self.signed) > 1_000_000:
            self.signed.pop(next(iter(self.signed)))
        hook = self.config.on_authorised
        if hook is not None:
            hook(seq, command, owner, nonce, signature)
