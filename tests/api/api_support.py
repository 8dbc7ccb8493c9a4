"""Test support: a node with the API served on loopback, funded accounts, ccxt clients."""

from __future__ import annotations

import itertools
import tempfile
import threading

import ccxt
import ccxt.pro

from clearway.api.server import ApiServer
from clearway.api.service import ApiConfig
from clearway.domain.commands import Deposit, SetMarkPrices
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind, OptionType
from clearway.engine.node import Node, wall_clock_ms

USDC = 1_000_000
PERP = "BTC_USDC-PERPETUAL"
PERP_SYMBOL = "BTC/USDC:USDC"
MID = 60_000 * USDC

BTC_PERP = InstrumentSpec(0, "BTC", Kind.PERPETUAL, tick_size=100_000, size_decimals=4, size_increment=1,
                          min_size=1, maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)
BTC_CALL = InstrumentSpec(1, "BTC", Kind.OPTION, tick_size=100_000, size_decimals=4, size_increment=1, min_size=1,
                          maker_fee_ppm=0, taker_fee_ppm=300, strike=65_000 * USDC,
                          expiry_ms=1_680_249_600_000, option_type=OptionType.CALL)


def auth_request(key, request_id: int = 0) -> dict:
    """A ``public/auth`` client_credentials request for API key ``key``."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "public/auth", "params": {
        "grant_type": "client_credentials", "client_id": key.client_id, "client_secret": key.client_secret}}


def ioc_buy_request(request_id: int) -> dict:
    """A ``private/buy`` of 0.001 BTC-PERP at 50,000, immediate-or-cancel: below the
    harness's marks, so on an empty book it is accepted, journaled and cancelled."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "private/buy", "params": {
        "instrument_name": PERP, "amount": "0.001", "price": "50000", "time_in_force": "immediate_or_cancel"}}


class Harness:
    """One node and its API server; ``account()`` makes a funded owner with an API key."""

    def __init__(self, config: ApiConfig | None = None) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.clock_offset_ms = 0  # added to the node's wall clock: a test moves time on without sleeping
        self.node = Node(self.dir.name, GenesisConfig(instruments=[BTC_PERP, BTC_CALL]), snapshot_every=0,
                         freeze_gc=False, switch_interval=None, clock=lambda: wall_clock_ms() + self.clock_offset_ms)
        self._deposits = itertools.count(1)
        self._owners = itertools.count(0x100)
        self._lock = threading.Lock()
        self.marks(MID)
        self.server = ApiServer(self.node, config).start()
        self.api = self.server.api

    def close(self) -> None:
        self.server.stop()
        self.node.close(snapshot=False)
        self.dir.cleanup()

    def marks(self, price: int, option_mark: int = 1_000 * USDC) -> None:
        self.node.submit(SetMarkPrices(0, 0, {"BTC": price}, {0: price, 1: option_mark})).result()

    def account(self, usdc: int = 1_000_000, scope: str = "trade"):
        """(owner, key) of a new address with ``usdc`` deposited (0: none) and an API key."""
        with self._lock:
            owner = "0x" + f"{next(self._owners):040x}"
            if usdc:
                self.node.submit(Deposit(0, 0, owner, usdc * USDC, next(self._deposits))).result()
        self.sync()
        return owner, self.api.keys.create(owner, "test", scope)

    def sync(self) -> None:
        """Wait until the API's read model has every durable command."""
        import asyncio

        model = self.api.model
        asyncio.run_coroutine_threadsafe(model.wait_for(self.node.durable_seq), model._loop).result(30)

    def ccxt(self, key=None) -> ccxt.deribit:
        ex = ccxt.deribit({"enableRateLimit": False, "timeout": 20_000})
        if key is not None:
            ex.apiKey, ex.secret = key.client_id, key.client_secret
        ex.urls["api"] = {"rest": self.server.url}
        return ex

    def pro(self, key=None) -> ccxt.pro.deribit:
        ex = ccxt.pro.deribit({"enableRateLimit": False, "timeout": 20_000})
        if key is not None:
            ex.apiKey, ex.secret = key.client_id, key.client_secret
        ex.urls["api"] = {"rest": self.server.url, "ws": self.server.ws_url}
        return ex

    def book(self, instrument: int = 0) -> tuple[list, list]:
        """The domain's book as (bids, asks) of [price USDC, amount] best first."""
        def levels(state):
            book = state.books[instrument]
            scale = 10**state.instruments[instrument].size_decimals
            return ([[p / USDC, q / scale] for p, q in book.levels(1)],
                    [[p / USDC, q / scale] for p, q in book.levels(-1)])
        return self.node.query(levels).result()

    def state_hash(self) -> str:
        return self.node.state_hash()


class CommitmentSigning:
    """The CommandSigning adapter over ``clearway.commitment.authorisation`` (what the
    CLI wiring passes to ApiConfig.signing)."""

    def __init__(self, chain_id: int = 31337, vault: str = "0x" + "ab" * 20) -> None:
        from clearway.commitment.authorisation import exchange_domain_separator

        self.chain_id, self.vault = chain_id, vault
        self.separator = exchange_domain_separator(chain_id, vault)

    def recover(self, command, owner, nonce, signature):
        from clearway.commitment.authorisation import Authorisation, AuthKind, recover_signer

        return recover_signer(self.separator, command, owner, Authorisation(AuthKind.SIGNED, nonce, signature))

    def typed_data(self, command, owner, nonce):
        from clearway.commitment.authorisation import typed_data

        return typed_data(self.chain_id, self.vault, command, owner, nonce)

    def sign(self, private_key: bytes, command, owner: str, nonce: int) -> str:
        from clearway.commitment.authorisation import sign_command

        return "0x" + sign_command(private_key, self.separator, command, owner, nonce).signature.hex()
