# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title On-chain settlement baseline
@notice What settling every fill on L1 costs: the comparison point for Clearway's batched
        settlement (issue 10). A venue that keeps positions and cash in contract storage
        and settles each matched fill in its own transaction, with the checks it needs:

          - both orders are EIP-712 typed messages signed by their accounts (ecrecover,
            canonical low-s signatures), not expired (block.timestamp <= expiry);
          - the fill price crosses both limits (buyer's limit >= price >= seller's limit);
          - cumulative filled size per order (keyed by its EIP-712 digest) never exceeds
            the order's size; an account may cancel its order (fills it to its size);
          - positions (signed lots per account x instrument) and cash (micro-USDC, signed:
            cash-based accounting, as Clearway's domain) move; the buyer pays price x size
            / 10**size_decimals (truncated), maker and taker fees (ppm of notional, rounded
            up; a negative maker fee is a rebate) go to the fee account;
          - collateral check, after the fill, for each party whose position on the traded
            instrument did not just shrink without flipping (a risk-reducing fill is always
            allowed):
                equity      = cash + sum_i floor(size_i * last_price_i / scale_i)
                requirement = sum_i ceil(|size_i| * last_price_i / scale_i * margin_ppm_i / 1e6)
                equity >= requirement
            over the account's open positions, where last_price_i is the price of the last
            fill of instrument i on this contract (the fill price for the traded one): the
            "unrealised PnL at the fill price" of a venue without an oracle.

        Fills are submitted by the venue's operator (the matcher, as a relayer would), one
        per transaction. Collateral: the 6-decimal stablecoin, deposited for any account.
        Not a production venue: no liquidations, funding or expiry; it exists to measure
        the gas one fill costs when everything happens on chain.
"""

from ethereum.ercs import IERC20

MAX_HELD: constant(uint256) = 256  # open positions per account (the collateral check loops over them)

PPM: constant(int256) = 1_000_000
SECP256K1N_HALF: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168  # (secp256k1 n) // 2

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "Order(address account,uint32 instrument,int8 side,uint64 price,uint64 size,uint64 nonce,uint64 expiry)"
)
EIP712_NAME_HASH: constant(bytes32) = keccak256("Clearway Onchain Settlement")
EIP712_VERSION_HASH: constant(bytes32) = keccak256("1")


struct Order:
    account: address
    instrument: uint32
    side: int8          # +1 buy, -1 sell
    price: uint64       # limit, micro-USDC per contract
    size: uint64        # lots
    nonce: uint64
    expiry: uint64      # unix seconds, inclusive

struct Signature:
    v: uint8
    r: bytes32
    s: bytes32

struct Instrument:
    size_scale: uint256     # 10**size_decimals lots per contract; 0 = not listed
    maker_fee_ppm: int256
    taker_fee_ppm: int256
    margin_ppm: uint256


event Deposited:
    account: indexed(address)
    amount: uint256
    cash: int256

event Withdrawn:
    account: indexed(address)
    amount: uint256
    cash: int256

event Settled:
    maker_order: indexed(bytes32)
    taker_order: indexed(bytes32)
    instrument: uint32
    taker_side: int8
    price: uint64
    size: uint64

event OrderCancelled:
    order: indexed(bytes32)


token: public(immutable(IERC20))
operator: public(immutable(address))
fee_account: public(immutable(address))
domain_separator: public(immutable(bytes32))

instruments: public(HashMap[uint32, Instrument])
last_price: public(HashMap[uint32, uint256])
cash: public(HashMap[address, int256])
positions: public(HashMap[address, HashMap[uint32, int256]])
held: HashMap[address, DynArray[uint32, MAX_HELD]]
filled: public(HashMap[bytes32, uint256])


@deploy
def __init__(token_: IERC20, fee_account_: address):
    token = token_
    operator = msg.sender
    fee_account = fee_account_
    domain_separator = keccak256(abi_encode(
        EIP712_DOMAIN_TYPEHASH, EIP712_NAME_HASH, EIP712_VERSION_HASH, chain.id, self
    ))


# ------------------------------------------------------------------------------ admin

@external
def list_instrument(instrument: uint32, size_decimals: uint8, maker_fee_ppm: int256,
                    taker_fee_ppm: int256, margin_ppm: uint256):
    """
    @notice List (or re-parameterise) an instrument. Operator only.
    @param margin_ppm Fraction of notional the collateral check requires, in ppm.
    """
    assert msg.sender == operator, "only the operator"
    assert size_decimals <= 30, "size_decimals too large"
    assert abs(maker_fee_ppm) < PPM and taker_fee_ppm >= 0 and taker_fee_ppm < PPM, "fee out of range"
    assert maker_fee_ppm + taker_fee_ppm >= 0, "rebate larger than the taker fee"
    assert margin_ppm <= 1_000_000, "margin above 100%"
    self.instruments[instrument] = Instrument(
        size_scale=10 ** convert(size_decimals, uint256),
        maker_fee_ppm=maker_fee_ppm,
        taker_fee_ppm=taker_fee_ppm,
        margin_ppm=margin_ppm,
    )


# ------------------------------------------------------------------------------ funds

@external
def deposit(account: address, amount: uint256):
    """
    @notice Credit `amount` micro-USDC to `account`, pulled from the caller (approve first).
    """
    assert account != empty(address), "deposit to the zero address"
    assert amount > 0, "zero deposit"
    extcall token.transferFrom(msg.sender, self, amount)
    new_cash: int256 = self.cash[account] + convert(amount, int256)
    self.cash[account] = new_cash
    log Deposited(account=account, amount=amount, cash=new_cash)


@external
def withdraw(amount: uint256):
    """
    @notice Pay `amount` of the caller's cash to the caller, if its cash covers it and the
            collateral check still holds afterwards.
    """
    new_cash: int256 = self.cash[msg.sender] - convert(amount, int256)
    assert new_cash >= 0, "insufficient cash"
    self.cash[msg.sender] = new_cash
    assert self._collateral_ok(msg.sender), "collateral check failed"
    extcall token.transfer(msg.sender, amount)
    log Withdrawn(account=msg.sender, amount=amount, cash=new_cash)


# ------------------------------------------------------------------------------ orders

@view
@internal
def _order_digest(order: Order) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(
        ORDER_TYPEHASH, order.account, order.instrument, order.side, order.price, order.size,
        order.nonce, order.expiry
    ))
    return keccak256(concat(b"\x19\x01", domain_separator, struct_hash))


@view
@external
def order_digest(order: Order) -> bytes32:
    """
    @notice EIP-712 digest of `order` (the key of `filled`, what the account signs).
    """
    return self._order_digest(order)


@pure
@internal
def _signer(digest: bytes32, signature: Signature) -> address:
    if convert(signature.s, uint256) > SECP256K1N_HALF:
        return empty(address)
    if signature.v != 27 and signature.v != 28:
        return empty(address)
    return ecrecover(digest, signature.v, signature.r, signature.s)


@external
def cancel(order: Order):
    """
    @notice The order's account marks it fully filled: no later fill can use it.
    """
    assert msg.sender == order.account, "only the order's account"
    digest: bytes32 = self._order_digest(order)
    self.filled[digest] = convert(order.size, uint256)
    log OrderCancelled(order=digest)


# ------------------------------------------------------------------------------ settlement

@pure
@internal
def _floor_div(a: int256, b: int256) -> int256:
    # b > 0; vyper's // truncates toward zero
    q: int256 = a // b
    if a % b != 0 and a < 0:
        q -= 1
    return q


@pure
@internal
def _ceil_div(a: int256, b: int256) -> int256:
    # b > 0
    q: int256 = a // b
    if a % b != 0 and a > 0:
        q += 1
    return q


@view
@internal
def _collateral_ok(account: address) -> bool:
    equity: int256 = self.cash[account]
    requirement: int256 = 0
    for instrument: uint32 in self.held[account]:
        size: int256 = self.positions[account][instrument]
        spec: Instrument = self.instruments[instrument]
        scale: int256 = convert(spec.size_scale, int256)
        price: int256 = convert(self.last_price[instrument], int256)
        equity += self._floor_div(size * price, scale)
        notional: int256 = abs(size) * price // scale
        requirement += self._ceil_div(notional * convert(spec.margin_ppm, int256), PPM)
    return equity >= requirement


@internal
def _move(account: address, instrument: uint32, delta: int256) -> bool:
    """Add `delta` lots to the position; True when the fill only reduced it (no flip)."""
    old: int256 = self.positions[account][instrument]
    new: int256 = old + delta
    self.positions[account][instrument] = new
    if old == 0:
        assert len(self.held[account]) < MAX_HELD, "too many open positions"
        self.held[account].append(instrument)
    elif new == 0:
        held: DynArray[uint32, MAX_HELD] = self.held[account]
        last: uint256 = len(held) - 1
        for i: uint256 in range(MAX_HELD):
            if i > last:
                break
            if held[i] == instrument:
                if i != last:
                    self.held[account][i] = held[last]
                self.held[account].pop()
                break
    return old != 0 and (new == 0 or (old > 0) == (new > 0)) and abs(new) < abs(old)


@external
def settle(maker: Order, maker_signature: Signature, taker: Order, taker_signature: Signature,
           price: uint64, size: uint64):
    """
    @notice Settle one fill of `size` lots at `price` between a resting maker order and a
            taker order (module docstring). Operator only. Reverts, changing nothing, on a
            bad or missing signature, an expired order, a price outside either limit, an
            overfill, an unknown instrument, or a failed collateral check.
    """
    assert msg.sender == operator, "only the operator settles"
    assert size > 0, "zero size"
    assert maker.account != taker.account, "self-trade"
    assert maker.instrument == taker.instrument, "instrument mismatch"
    assert (maker.side == 1 and taker.side == -1) or (maker.side == -1 and taker.side == 1), "sides do not oppose"
    assert block.timestamp <= convert(maker.expiry, uint256), "maker order expired"
    assert block.timestamp <= convert(taker.expiry, uint256), "taker order expired"
    spec: Instrument = self.instruments[maker.instrument]
    assert spec.size_scale != 0, "unknown instrument"
    if taker.side == 1:
        assert price <= taker.price and price >= maker.price, "price does not cross"
    else:
        assert price <= maker.price and price >= taker.price, "price does not cross"

    maker_digest: bytes32 = self._order_digest(maker)
    taker_digest: bytes32 = self._order_digest(taker)
    assert self._signer(maker_digest, maker_signature) == maker.account, "bad maker signature"
    assert self._signer(taker_digest, taker_signature) == taker.account, "bad taker signature"
    lots: uint256 = convert(size, uint256)
    maker_filled: uint256 = self.filled[maker_digest] + lots
    taker_filled: uint256 = self.filled[taker_digest] + lots
    assert maker_filled <= convert(maker.size, uint256), "maker order overfilled"
    assert taker_filled <= convert(taker.size, uint256), "taker order overfilled"
    self.filled[maker_digest] = maker_filled
    self.filled[taker_digest] = taker_filled

    notional: int256 = convert(lots * convert(price, uint256) // spec.size_scale, int256)
    maker_fee: int256 = self._ceil_div(notional * spec.maker_fee_ppm, PPM)
    taker_fee: int256 = self._ceil_div(notional * spec.taker_fee_ppm, PPM)
    if taker.side == 1:
        self.cash[taker.account] -= notional + taker_fee
        self.cash[maker.account] += notional - maker_fee
    else:
        self.cash[taker.account] += notional - taker_fee
        self.cash[maker.account] -= notional + maker_fee
    self.cash[fee_account] += maker_fee + taker_fee

    delta: int256 = convert(taker.side, int256) * convert(lots, int256)
    taker_reduced: bool = self._move(taker.account, taker.instrument, delta)
    maker_reduced: bool = self._move(maker.account, maker.instrument, -delta)
    self.last_price[maker.instrument] = convert(price, uint256)
    if not taker_reduced:
        assert self._collateral_ok(taker.account), "taker collateral check failed"
    if not maker_reduced:
        assert self._collateral_ok(maker.account), "maker collateral check failed"
    log Settled(maker_order=maker_digest, taker_order=taker_digest, instrument=maker.instrument,
                taker_side=taker.side, price=price, size=size)


@view
@external
def open_instruments(account: address) -> DynArray[uint32, MAX_HELD]:
    """
    @notice Instruments in which `account` has a non-zero position (unordered).
    """
    return self.held[account]


@view
@external
def collateral_ok(account: address) -> bool:
    """
    @notice The collateral check of the module docstring, at the stored last prices.
    """
    return self._collateral_ok(account)
