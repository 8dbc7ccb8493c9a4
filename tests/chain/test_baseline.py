"""The on-chain settlement baseline (OnchainSettlement.vy, clearway/chain/baseline.py):
every check refuses what it should and changes nothing; a replay of the domain's fills
ends with the domain's positions and cash; gas per fill is in the range an L1 venue pays."""

from __future__ import annotations

import pytest
from support import BTC, Exchange, option_spec, perp_spec, usd

from clearway.chain.backend import EmbeddedChain
from clearway.chain.baseline import (
    BLOCK_GAS_LIMIT,
    BLOCK_TIME_S,
    BaselineFill,
    BaselineVenue,
    FillCollector,
    account_key,
    fills_from_events,
    measure_baseline,
    order_digest,
    sign_digest,
)
from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.domain.events import LiquidationFill, OrderAccepted, OrderAmended, Trade
from clearway.domain.genesis import GenesisConfig

PERP = perp_spec()
DEPOSIT = usd(100_000)
MAKER, TAKER = 2, 3


@pytest.fixture(scope="module")
def chain() -> EmbeddedChain:
    return EmbeddedChain(seed=b"baseline-tests")


@pytest.fixture
def venue(chain) -> BaselineVenue:
    venue = BaselineVenue(chain, seed=b"baseline-tests")
    venue.list_instrument(PERP)
    venue.fund(MAKER, DEPOSIT)
    venue.fund(TAKER, DEPOSIT)
    return venue


def fill(price=usd(25_000), size=BTC // 10, maker_limit=None, taker_limit=None, maker_size=BTC,
         taker_size=BTC, taker_side=1, maker_nonce=1, taker_nonce=2) -> BaselineFill:
    return BaselineFill(MAKER, TAKER, 1, 2, PERP.instrument_id, taker_side, price, size,
                        price if maker_limit is None else maker_limit, maker_size,
                        price if taker_limit is None else taker_limit, taker_size, maker_nonce, taker_nonce)


def expiry(chain) -> int:
    return chain.timestamp() + 3_600


def snapshot(venue: BaselineVenue) -> tuple:
    return (venue.cash(MAKER), venue.cash(TAKER), venue.fee_cash(), venue.position(MAKER, 0),
            venue.position(TAKER, 0))


def assert_refused(venue, call_args, reason: str) -> None:
    before = snapshot(venue)
    with pytest.raises(ChainError) as info:
        venue.contract.transact("settle", *call_args, sender=venue.operator)
    assert info.value.code == ChainErrorCode.REVERTED
    assert reason in str(info.value)
    assert snapshot(venue) == before


# ------------------------------------------------------------------------------ digests


def test_python_digest_and_domain_separator_equal_the_contracts(venue, chain):
    assert venue.contract.call("domain_separator") == venue.separator
    order = venue.order(MAKER, 0, -1, usd(25_000), BTC, 7, expiry(chain))
    assert venue.contract.call("order_digest", order) == order_digest(venue.separator, order)


def test_account_keys_are_derived_from_the_seed():
    assert account_key(b"s", 5) == account_key(b"s", 5)
    assert account_key(b"s", 5) != account_key(b"s", 6)
    assert account_key(b"s", 5) != account_key(b"t", 5)


# ------------------------------------------------------------------------------ refusals


def test_given_a_taker_order_signed_by_another_key_when_settled_then_refused_and_nothing_changes(venue, chain):
    maker, maker_sig, taker, _, price, size = venue.settle_call(fill(), expiry(chain))
    forged = sign_digest(account_key(b"someone else", TAKER), order_digest(venue.separator, taker))
    assert_refused(venue, (maker, maker_sig, taker, forged, price, size), "bad taker signature")


def test_given_a_maker_signature_over_other_terms_when_settled_then_refused(venue, chain):
    maker, _, taker, taker_sig, price, size = venue.settle_call(fill(), expiry(chain))
    other_terms = (maker[0], maker[1], maker[2], maker[3], maker[4] * 2, maker[5], maker[6])
    signature = venue.sign(MAKER, other_terms)  # signed a larger order; the fill presents the smaller
    assert_refused(venue, (maker, signature, taker, taker_sig, price, size), "bad maker signature")


def test_given_a_high_s_signature_when_settled_then_refused(venue, chain):
    maker, maker_sig, taker, taker_sig, price, size = venue.settle_call(fill(), expiry(chain))
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    v, r, s = taker_sig
    malleable = (55 - v, r, (n - int.from_bytes(s, "big")).to_bytes(32, "big"))  # same signer, high s
    assert_refused(venue, (maker, maker_sig, taker, malleable, price, size), "bad taker signature")


def test_given_fills_beyond_an_orders_size_when_settled_then_the_overfill_is_refused(venue, chain):
    deadline = expiry(chain)
    venue.settle(fill(size=600, maker_size=1_000, maker_nonce=10, taker_nonce=11), deadline)
    over = venue.settle_call(fill(size=401, maker_size=1_000, maker_nonce=10, taker_nonce=12), deadline)
    assert_refused(venue, over, "maker order overfilled")
    venue.settle(fill(size=400, maker_size=1_000, maker_nonce=10, taker_nonce=12), deadline)  # exactly full
    assert venue.position(TAKER, 0) == 1_000


def test_given_a_price_above_the_buyers_limit_when_settled_then_refused(venue, chain):
    args = venue.settle_call(fill(price=usd(25_001), maker_limit=usd(25_000), taker_limit=usd(25_000.5)),
                             expiry(chain))
    assert_refused(venue, args, "price does not cross")


def test_given_a_price_below_the_sellers_limit_when_settled_then_refused(venue, chain):
    args = venue.settle_call(fill(price=usd(24_999), maker_limit=usd(25_000), taker_limit=usd(25_010)),
                             expiry(chain))
    assert_refused(venue, args, "price does not cross")


def test_given_an_expired_order_when_settled_then_refused(venue, chain):
    args = venue.settle_call(fill(maker_nonce=20, taker_nonce=21), chain.timestamp() - 1)
    assert_refused(venue, args, "maker order expired")


def test_given_a_fill_beyond_the_collateral_when_settled_then_refused_but_reducing_it_is_allowed(venue, chain):
    deadline = expiry(chain)
    # 100,000 USDC of collateral at a 5 % margin supports 2,000,000 USDC of notional: 80 BTC
    assert_refused(venue, venue.settle_call(fill(size=81 * BTC, maker_size=100 * BTC, taker_size=100 * BTC,
                                                 maker_nonce=30, taker_nonce=31), deadline),
                   "collateral check failed")
    venue.settle(fill(size=79 * BTC, maker_size=100 * BTC, taker_size=100 * BTC, maker_nonce=30, taker_nonce=31),
                 deadline)
    # the price falls 2 %: the long's equity no longer covers 5 % of its notional ...
    low = usd(24_500)
    crash = fill(price=low, size=1, taker_side=-1, maker_nonce=32, taker_nonce=33)  # MAKER buys 1 lot from TAKER
    venue.settle(crash, deadline)   # TAKER (long) reduces: allowed although under-collateralised
    assert not venue.contract.call("collateral_ok", venue.address(TAKER))
    grow = fill(price=low, size=1, maker_nonce=34, taker_nonce=35)  # TAKER buys again: refused
    assert_refused(venue, venue.settle_call(grow, deadline), "taker collateral check failed")


def test_given_a_cancelled_order_when_settled_then_refused(venue, chain):
    deadline = expiry(chain)
    owner = chain.new_account("maker-with-gas")
    venue.assign_key(MAKER, owner.key)
    venue.fund(MAKER, DEPOSIT)
    maker, maker_sig, taker, taker_sig, price, size = venue.settle_call(fill(maker_nonce=40, taker_nonce=41), deadline)
    with pytest.raises(ChainError, match="only the order's account"):
        venue.contract.transact("cancel", maker, sender=venue.operator)
    venue.contract.transact("cancel", maker, sender=owner)
    assert venue.contract.call("filled", order_digest(venue.separator, maker)) == BTC
    assert_refused(venue, (maker, maker_sig, taker, taker_sig, price, size), "maker order overfilled")


def test_given_an_unknown_instrument_when_settled_then_refused(venue, chain):
    other = BaselineFill(MAKER, TAKER, 1, 2, 9, 1, usd(100), 10, usd(100), 10, usd(100), 10, 50, 51)
    assert_refused(venue, venue.settle_call(other, expiry(chain)), "unknown instrument")


# ------------------------------------------------------------------------------ replay


def domain_run():
    """A few fills on a perp and an option: partial fills across levels, an amended order,
    a buy and a sell aggressor, three accounts; returns (exchange, events)."""
    call = option_spec(1, 30_000)
    ex = Exchange(GenesisConfig(instruments=[perp_spec(), call]))
    events = []
    for owner in (0xA1, 0xB2, 0xC3):
        ex.deposit(owner, usd(1_000_000))
    ex.marks(usd(25_000), marks={1: usd(500)})
    for i in range(4):
        events += ex.place(2, -1, BTC // 10, usd(25_000 + i))
    events += ex.place(3, 1, BTC // 4 + 7, usd(25_010))            # sweeps 2.5 levels
    resting = ex.place(4, 1, BTC // 5, usd(24_990))
    events += resting
    order_id = resting[0].order_id
    events += ex.amend(4, order_id, BTC // 5, usd(24_995))
    events += ex.place(2, -1, BTC // 2, usd(24_995))               # fills the amended bid, rests the rest
    events += ex.place(3, -1, BTC // 20, usd(24_990))              # hits nothing (bid gone) -> rests
    events += ex.place(4, 1, BTC // 20, usd(24_990))               # takes the 24,990 ask... at 24,990
    events += ex.place(2, -1, BTC, usd(400), instrument=1)         # option writer rests
    events += ex.place(3, 1, BTC // 2, usd(450), instrument=1)     # option buyer takes half
    return ex, events


def test_given_the_domains_fills_when_replayed_then_positions_and_cash_match_the_domain(chain):
    ex, events = domain_run()
    fills = fills_from_events(events)
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(fills) == len(trades) >= 6
    venue = BaselineVenue(chain, seed=b"replay")
    result = measure_baseline(chain, fills, ex.state.instruments, venue=venue, deposit=DEPOSIT)
    assert result["trades"] == result["trades_settled"] == len(trades)
    assert result["reverted"] == 0
    for account in (2, 3, 4):
        assert venue.cash(account) - DEPOSIT == ex.cash(account) - usd(1_000_000), account
        for instrument in (0, 1):
            assert venue.position(account, instrument) == ex.position(account, instrument), (account, instrument)
    assert venue.fee_cash() == ex.cash(0)


def test_gas_per_settled_fill_is_in_the_range_of_an_l1_venue(chain):
    ex, events = domain_run()
    result = measure_baseline(chain, fills_from_events(events), ex.state.instruments, seed=b"gas")
    # two ecrecovers, two order-fill slots, two positions, three cash slots, a log, ~700
    # bytes of calldata: tens of thousands of gas at least, far below a block
    assert 60_000 < result["gas_per_trade_min"] <= result["gas_per_trade_p50"] <= result["gas_per_trade_max"] < 500_000
    assert result["gas_total"] == pytest.approx(result["gas_per_trade"] * result["trades_settled"])
    assert result["block_gas_limit"] == BLOCK_GAS_LIMIT == 30_000_000 and result["block_time_s"] == BLOCK_TIME_S == 12
    assert result["max_trades_per_s"] == pytest.approx(30e6 / result["gas_per_trade"] / 12)
    assert result["calldata_bytes_per_trade"] > 500  # two orders and two signatures, ABI-encoded


def test_a_replay_with_a_fixed_expiry_costs_the_same_gas():
    ex, events = domain_run()
    fills = fills_from_events(events)
    early, late = EmbeddedChain(seed=b"same"), EmbeddedChain(seed=b"same")
    late.time_travel(3_600)  # without a fixed expiry the two would sign different expiries
    deadline = late.timestamp() + 7_200
    runs = [measure_baseline(c, fills, ex.state.instruments, expiry=deadline) for c in (early, late)]
    assert runs[0]["reverted"] == runs[1]["reverted"] == 0
    assert runs[0]["gas_total"] == runs[1]["gas_total"]


def test_max_fills_replays_an_evenly_spaced_sample(chain):
    ex, events = domain_run()
    fills = fills_from_events(events)
    result = measure_baseline(chain, fills, ex.state.instruments, seed=b"sample", max_fills=3)
    assert result["trades"] == len(fills) and result["trades_settled"] == 3


def test_a_fill_of_an_instrument_without_spec_is_an_error(chain):
    with pytest.raises(ValueError, match="no instrument spec"):
        measure_baseline(chain, [fill()], [])


# ------------------------------------------------------------------------------ fill builder


def test_collector_uses_accepted_and_amended_orders_and_makes_up_a_liquidation_takers_order():
    collector = FillCollector()
    collector.feed([
        OrderAccepted(5, MAKER, 0, -1, usd(25_000), 300, 1, False, False, ""),
        OrderAmended(5, MAKER, 0, usd(25_001), 300, 200, False),
        Trade(9, 0, usd(25_001), 50, 1, 5, 0, MAKER, TAKER, 0, 0),
        LiquidationFill(TAKER, 0, 9, 1, 50, usd(25_001), usd(25_100), 0, 0, 0, 0),
    ])
    (only,) = collector.fills
    assert (only.maker_limit, only.maker_size, only.maker_nonce) == (usd(25_001), 200, (5 << 16) + 1)
    assert (only.taker_limit, only.taker_size) == (usd(25_001), 50)
    assert only.taker_nonce == (1 << 63) + 9 * 2 + 1
    assert collector.liquidation_fills == 1
