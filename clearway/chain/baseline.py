"""The on-chain settlement baseline: every fill settled by its own L1 transaction.

Clearway settles thousands of fills with one batch; a fully on-chain derivatives venue
pays for every fill. ``contracts/OnchainSettlement.vy`` is such a venue (its docstring
lists the checks: two EIP-712 order signatures, expiry, crossing limits, cumulative fill
per order, positions, cash and fees, a collateral check). This module deploys it on any
:class:`~clearway.chain.backend.Chain` (embedded titanoboa with Prague gas, or JSON-RPC),
replays a run's fills through it and measures the gas of each settlement from its receipt
(calldata included):

    fills = fills_from_events(events)                     # from the domain's Trade events
    result = measure_baseline(EmbeddedChain(), fills, state.instruments.values())
    result["gas_per_trade"], result["max_trades_per_s"]

Orders on chain are EIP-712 typed messages::

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
        name = "Clearway Onchain Settlement", version = "1", verifyingContract = the contract
    Order(address account,uint32 instrument,int8 side,uint64 price,uint64 size,uint64 nonce,
          uint64 expiry)

Signing keys: account ``a`` of the replayed run signs with the secp256k1 key
``keccak256(seed ‖ b"/baseline-account/" ‖ decimal(a))`` (:func:`account_key`), so a replay
is reproducible and needs no key from the run. Those keys never send transactions: the
operator (a key from ``chain.new_account``) mints the stablecoin, deposits it for every
account and submits the fills, as the venue's matcher would.

Throughput of the baseline under an L1 block: ``max_trades_per_s = block_gas_limit /
gas_per_trade / block_time_s`` with a 30,000,000-gas block every 12 s (Ethereum mainnet's
block gas limit of 2023 and its slot time), the mean gas per trade measured here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_keys import keys

from clearway.chain.backend import Chain, Contract, Receipt
from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.domain.events import LiquidationFill, OrderAccepted, OrderAmended, Trade
from clearway.domain.instruments import InstrumentSpec, Kind

BLOCK_GAS_LIMIT = 30_000_000
BLOCK_TIME_S = 12
DEFAULT_SEED = b"clearway-baseline"
DEFAULT_DEPOSIT = 10**15
"""Micro-USDC deposited per account (10⁹ USDC): the replayed run's margin rules are the
domain's, so the baseline's own collateral check must not refuse a fill the domain took.
The check still runs (and costs its gas) on every fill."""
DEFAULT_OPTION_MARGIN_PPM = 150_000
"""Collateral fraction of an option's notional (premium × size) on the baseline; perpetuals
use their initial margin fraction (``InstrumentSpec.imf_ppm``)."""
ORDER_TTL_S = 86_400
"""Orders of a replay expire this long after the chain's clock at the start of the replay."""

EIP712_NAME = "Clearway Onchain Settlement"
EIP712_VERSION = "1"
ORDER_TYPE = "Order(address account,uint32 instrument,int8 side,uint64 price,uint64 size,uint64 nonce,uint64 expiry)"
ORDER_TYPEHASH = keccak(ORDER_TYPE.encode())
DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_UINT256 = 2**256 - 1

_VERSION_BITS = 16
_SYNTHETIC = 1 << 63  # nonces of orders the replay had to make up (liquidation takers)


# ============================================================================ fills


@dataclass(frozen=True, slots=True)
class BaselineFill:
    """One fill to settle on chain, with the two orders it consumes.

    Attributes
    ----------
    maker_account, taker_account : int
        Domain ``AccountId``s.
    maker_order_id, taker_order_id : int
        Domain ``OrderId``s (0 for a liquidation's taker, which has no order).
    instrument : int
        Domain ``InstrumentId``.
    taker_side : int
        +1 the taker bought, −1 it sold.
    price : int
        Fill price, micro-USDC per contract.
    size : int
        Lots.
    maker_limit, taker_limit : int
        Limit prices of the two orders (micro-USDC per contract).
    maker_size, taker_size : int
        Total sizes (lots) of the two signed orders; cumulative fills may not exceed them.
    maker_nonce, taker_nonce : int
        The orders' EIP-712 nonces (uint64); default: the order id. Distinct signed orders
        of one account need distinct (limit, size, nonce).
    """

    maker_account: int
    taker_account: int
    maker_order_id: int
    taker_order_id: int
    instrument: int
    taker_side: int
    price: int
    size: int
    maker_limit: int
    maker_size: int
    taker_limit: int
    taker_size: int
    maker_nonce: int = -1
    taker_nonce: int = -1

    def __post_init__(self) -> None:
        if self.maker_nonce < 0:
            object.__setattr__(self, "maker_nonce", self.maker_order_id)
        if self.taker_nonce < 0:
            object.__setattr__(self, "taker_nonce", self.taker_order_id)
        if self.taker_side not in (1, -1):
            raise ValueError("taker_side must be +1 or -1")
        if self.size <= 0 or self.price <= 0:
            raise ValueError("a fill needs a positive size and price")


class FillCollector:
    """Builds :class:`BaselineFill`s from the domain's events, fed in order.

    ``OrderAccepted`` gives an order's limit and size; ``OrderAmended`` makes it a new
    signed order (on chain an amendment is a new order: limit = the new price, size = the
    remaining size, nonce = order id · 2¹⁶ + amendment count); each ``Trade`` becomes a
    fill. A taker without an accepted order (a liquidation's, order id 0) or a maker whose
    acceptance was not seen gets an order for exactly that fill (limit = fill price,
    size = fill size, nonce 2⁶³ + trade id · 2 + {0 maker, 1 taker}).
    ``liquidation_fills`` counts the fills that were liquidations. Those replay as ordinary
    signed fills: the baseline charges its taker fee where the domain charges none (the
    gas of a fill does not depend on the fee's value, only on it being non-zero).
    """

    def __init__(self) -> None:
        self.fills: list[BaselineFill] = []
        self.liquidation_fills = 0
        self._orders: dict[int, tuple[int, int, int]] = {}  # order id -> (limit, size, nonce)
        self._versions: dict[int, int] = {}

    def feed(self, events: Iterable[Any]) -> None:
        """Consume one command's events (any event types; others are ignored)."""
        for event in events:
            kind = type(event)
            if kind is Trade:
                self.fills.append(self._fill(event))
            elif kind is OrderAccepted:
                self._orders[event.order_id] = (event.price, event.size, event.order_id << _VERSION_BITS)
            elif kind is OrderAmended:
                version = self._versions.get(event.order_id, 0) + 1
                self._versions[event.order_id] = version
                self._orders[event.order_id] = (event.price, event.remaining,
                                                (event.order_id << _VERSION_BITS) + version)
            elif kind is LiquidationFill:
                self.liquidation_fills += 1

    def _order(self, order_id: int, trade: Trade, role: int) -> tuple[int, int, int]:
        known = self._orders.get(order_id) if order_id else None
        if known is None:
            return trade.price, trade.size, _SYNTHETIC + trade.trade_id * 2 + role
        return known

    def _fill(self, trade: Trade) -> BaselineFill:
        maker = self._order(trade.maker_order_id, trade, 0)
        taker = self._order(trade.taker_order_id, trade, 1)
        return BaselineFill(
            trade.maker_account, trade.taker_account, trade.maker_order_id, trade.taker_order_id,
            trade.instrument, trade.taker_side, trade.price, trade.size,
            maker[0], maker[1], taker[0], taker[1], maker[2], taker[2],
        )


def fills_from_events(events: Iterable[Any]) -> list[BaselineFill]:
    """The fills of an event stream (in order), with their orders: see :class:`FillCollector`."""
    collector = FillCollector()
    collector.feed(events)
    return collector.fills


# ============================================================================ signing


def account_key(seed: bytes, account: int) -> bytes:
    """The 32-byte signing key of domain account ``account`` in a replay seeded by ``seed``
    (module docstring)."""
    return keccak(seed + b"/baseline-account/" + str(int(account)).encode())


def domain_separator(chain_id: int, contract: str) -> bytes:
    """``hashStruct(EIP712Domain)`` of the contract; equals its ``domain_separator()``."""
    return keccak(encode(
        ("bytes32", "bytes32", "bytes32", "uint256", "address"),
        [DOMAIN_TYPEHASH, keccak(EIP712_NAME.encode()), keccak(EIP712_VERSION.encode()), chain_id, contract],
    ))


def order_tuple(account: str, instrument: int, side: int, price: int, size: int, nonce: int,
                expiry: int) -> tuple:
    """The ``Order`` struct as the contract's ABI takes it."""
    return (account, instrument, side, price, size, nonce, expiry)


def order_digest(separator: bytes, order: tuple) -> bytes:
    """EIP-712 digest of an order tuple (:func:`order_tuple`); equals ``order_digest()``."""
    struct_hash = keccak(encode(
        ("bytes32", "address", "uint32", "int8", "uint64", "uint64", "uint64", "uint64"),
        [ORDER_TYPEHASH, *order],
    ))
    return keccak(b"\x19\x01" + separator + struct_hash)


def sign_digest(private_key: bytes, digest: bytes) -> tuple[int, bytes, bytes]:
    """``(v, r, s)`` with v in {27, 28} and a canonical low s, as the contract requires."""
    signature = keys.PrivateKey(private_key).sign_msg_hash(digest)
    v, r, s = signature.v, signature.r, signature.s
    if s > SECP256K1_N // 2:
        s, v = SECP256K1_N - s, v ^ 1
    return v + 27, r.to_bytes(32, "big"), s.to_bytes(32, "big")


# ============================================================================ the venue


def margin_ppm_of(spec: InstrumentSpec) -> int:
    """Collateral fraction the baseline requires for ``spec`` (ppm of notional)."""
    return spec.imf_ppm if spec.kind == Kind.PERPETUAL and spec.imf_ppm else DEFAULT_OPTION_MARGIN_PPM


class BaselineVenue:
    """``OnchainSettlement.vy`` deployed on ``chain`` with its stablecoin.

    ``operator`` (a funded key from ``chain.new_account``) deploys both contracts, is the
    stablecoin's minter, lists instruments, deposits for accounts and submits fills.
    ``fee_account`` receives the fees (an address derived from ``seed``).
    """

    def __init__(self, chain: Chain, seed: bytes = DEFAULT_SEED) -> None:
        self.chain = chain
        self.seed = seed
        self.operator: LocalAccount = chain.new_account("baseline-operator")
        self.fee_account = Account.from_key(keccak(seed + b"/baseline-fee-account")).address
        self.token: Contract = chain.deploy("Stablecoin", "Clearway Test USD", "cwUSD", sender=self.operator)
        self.contract: Contract = chain.deploy("OnchainSettlement", self.token.address, self.fee_account,
                                               sender=self.operator)
        self.token.transact("approve", self.contract.address, MAX_UINT256, sender=self.operator)
        self.separator = domain_separator(chain.chain_id, self.contract.address)
        self._keys: dict[int, bytes] = {}
        self._addresses: dict[int, str] = {}
        self.listed: set[int] = set()

    # -- accounts ------------------------------------------------------------------------
    def key(self, account: int) -> bytes:
        key = self._keys.get(account)
        if key is None:
            key = self._keys[account] = account_key(self.seed, account)
        return key

    def address(self, account: int) -> str:
        """Checksummed address of domain account ``account`` on the baseline."""
        address = self._addresses.get(account)
        if address is None:
            address = self._addresses[account] = Account.from_key(self.key(account)).address
        return address

    def assign_key(self, account: int, private_key: bytes) -> None:
        """Sign ``account``'s orders with ``private_key`` instead of the derived key (when
        the replay knows the account's real key, or it must send transactions itself)."""
        self._keys[account] = bytes(private_key)
        self._addresses[account] = Account.from_key(private_key).address

    def list_instrument(self, spec: InstrumentSpec) -> Receipt:
        receipt = self.contract.transact("list_instrument", spec.instrument_id, spec.size_decimals,
                                         spec.maker_fee_ppm, spec.taker_fee_ppm, margin_ppm_of(spec),
                                         sender=self.operator)
        self.listed.add(spec.instrument_id)
        return receipt

    def fund(self, account: int, amount: int) -> Receipt:
        """Mint ``amount`` micro-USDC to the operator and deposit it for ``account``."""
        return self.fund_many([account], amount)[0]

    def fund_many(self, accounts: Iterable[int], amount: int) -> list[Receipt]:
        """Mint ``amount`` × len(accounts) once, then deposit ``amount`` for each account
        (one transaction each); the deposit receipts, in order."""
        accounts = list(accounts)
        if not accounts:
            return []
        self.token.transact("mint", self.operator.address, amount * len(accounts), sender=self.operator)
        return [self.contract.transact("deposit", self.address(a), amount, sender=self.operator) for a in accounts]

    # -- orders and fills ----------------------------------------------------------------
    def order(self, account: int, instrument: int, side: int, price: int, size: int, nonce: int,
              expiry: int) -> tuple:
        return order_tuple(self.address(account), instrument, side, price, size, nonce, expiry)

    def sign(self, account: int, order: tuple) -> tuple[int, bytes, bytes]:
        return sign_digest(self.key(account), order_digest(self.separator, order))

    def settle_call(self, fill: BaselineFill, expiry: int) -> tuple:
        """Arguments of ``settle`` for ``fill`` (orders built and signed here)."""
        maker = self.order(fill.maker_account, fill.instrument, -fill.taker_side, fill.maker_limit,
                           fill.maker_size, fill.maker_nonce, expiry)
        taker = self.order(fill.taker_account, fill.instrument, fill.taker_side, fill.taker_limit,
                           fill.taker_size, fill.taker_nonce, expiry)
        return (maker, self.sign(fill.maker_account, maker), taker, self.sign(fill.taker_account, taker),
                fill.price, fill.size)

    def settle(self, fill: BaselineFill, expiry: int) -> Receipt:
        """Settle one fill in one transaction; ChainError REVERTED with the contract's
        reason if it refuses."""
        return self.contract.transact("settle", *self.settle_call(fill, expiry), sender=self.operator)

    # -- reads ---------------------------------------------------------------------------
    def cash(self, account: int) -> int:
        return self.contract.call("cash", self.address(account))

    def position(self, account: int, instrument: int) -> int:
        return self.contract.call("positions", self.address(account), instrument)

    def fee_cash(self) -> int:
        return self.contract.call("cash", self.fee_account)


# ============================================================================ measurement


def measure_baseline(
    chain: Chain,
    fills: Iterable[BaselineFill],
    instruments: Iterable[InstrumentSpec] | Mapping[int, InstrumentSpec],
    *,
    seed: bytes = DEFAULT_SEED,
    deposit: int = DEFAULT_DEPOSIT,
    max_fills: int | None = None,
    venue: BaselineVenue | None = None,
    expiry: int | None = None,
) -> dict[str, Any]:
    """Replay ``fills`` through a fresh :class:`BaselineVenue` on ``chain``, one transaction
    per fill, and measure the gas each settlement's receipt charged (calldata included).

    Parameters
    ----------
    fills : iterable of BaselineFill
        In the order the run made them.
    instruments : InstrumentSpec values (or a mapping id → spec)
        Must include every instrument the fills trade; the others are not listed.
    seed : bytes
        Derives the accounts' signing keys (:func:`account_key`) and the fee account.
    deposit : int
        Micro-USDC deposited for each account before the replay (``DEFAULT_DEPOSIT``).
    max_fills : int or None
        Replay at most this many fills, evenly spaced over the run (the gas of a fill does
        not depend on fills of other orders being replayed); None: all.
    venue : BaselineVenue or None
        An already deployed venue to use (tests); default: deploy one.
    expiry : int or None
        Expiry (unix seconds) of every order; default: the chain's clock + ``ORDER_TTL_S``.
        The orders' bytes, so their signatures and the calldata gas (4 per zero byte, 16
        per other byte), depend on it: a fresh embedded chain starts at the wall clock, so
        two replays differ by a few gas per fill unless ``expiry`` is fixed.

    Returns
    -------
    dict
        ``trades`` (fills given), ``trades_settled``, ``reverted`` (fills the contract refused,
        with ``first_revert`` its reason), ``gas_total``, ``gas_per_trade`` (mean),
        ``gas_per_trade_p50``, ``gas_per_trade_p99``, ``gas_per_trade_min``,
        ``gas_per_trade_max``, ``calldata_bytes_per_trade`` (mean), ``block_gas_limit``
        (30,000,000), ``block_time_s`` (12), ``trades_per_block`` (⌊limit / mean⌋),
        ``max_trades_per_s`` (limit / mean / block time), ``chain``.

    Raises
    ------
    ValueError
        A fill trades an instrument missing from ``instruments``, or no fill was settled.
    """
    fills = list(fills)
    specs = dict(instruments) if isinstance(instruments, Mapping) else {s.instrument_id: s for s in instruments}
    missing = sorted({f.instrument for f in fills} - set(specs))
    if missing:
        raise ValueError(f"no instrument spec for ids {missing}")
    replay = _evenly_spaced(fills, max_fills)
    venue = venue or BaselineVenue(chain, seed)
    for instrument in sorted({f.instrument for f in replay} - venue.listed):
        venue.list_instrument(specs[instrument])
    venue.fund_many(sorted({a for f in replay for a in (f.maker_account, f.taker_account)}), deposit)
    if expiry is None:
        expiry = chain.timestamp() + ORDER_TTL_S
    gas: list[int] = []
    calldata: list[int] = []
    reverted = 0
    first_revert = ""
    for fill in replay:
        try:
            receipt = venue.settle(fill, expiry)
        except ChainError as exc:
            if exc.code != ChainErrorCode.REVERTED:
                raise
            reverted += 1
            first_revert = first_revert or str(exc)
            continue
        gas.append(receipt.gas_used)
        calldata.append(receipt.calldata_bytes)
    if not gas:
        raise ValueError(f"no fill settled ({reverted} reverted: {first_revert or 'no fills'})")
    return baseline_summary(gas, calldata, trades=len(fills), reverted=reverted, first_revert=first_revert,
                            chain=chain.describe())


def baseline_summary(gas: list[int], calldata: list[int], *, trades: int, reverted: int = 0,
                     first_revert: str = "", chain: str = "") -> dict[str, Any]:
    """The result dict of :func:`measure_baseline` from per-fill gas and calldata sizes."""
    ordered = sorted(gas)
    mean = sum(gas) / len(gas)
    return {
        "trades": trades,
        "trades_settled": len(gas),
        "reverted": reverted,
        "first_revert": first_revert,
        "gas_total": sum(gas),
        "gas_per_trade": mean,
        "gas_per_trade_p50": statistics.median(ordered),
        "gas_per_trade_p99": ordered[-(-99 * len(ordered) // 100) - 1],  # nearest rank
        "gas_per_trade_min": ordered[0],
        "gas_per_trade_max": ordered[-1],
        "calldata_bytes_per_trade": sum(calldata) / len(calldata) if calldata else 0.0,
        "block_gas_limit": BLOCK_GAS_LIMIT,
        "block_time_s": BLOCK_TIME_S,
        "trades_per_block": int(BLOCK_GAS_LIMIT // mean),
        "max_trades_per_s": BLOCK_GAS_LIMIT / mean / BLOCK_TIME_S,
        "chain": chain,
    }


def _evenly_spaced(fills: list[BaselineFill], limit: int | None) -> list[BaselineFill]:
    if limit is None or len(fills) <= limit:
        return fills
    if limit <= 0:
        raise ValueError("max_fills must be positive")
    return [fills[(i * len(fills)) // limit] for i in range(limit)]
