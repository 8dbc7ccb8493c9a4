"""Hypothesis stateful test of the market lifecycle: trading in a perp and options, signed
oracle moves of up to ±30 %, funding hours, halts, liquidations, ADL, expiries, forced
withdrawals and margin-mode switches, all through apply().

Invariants after every command:
- Σ cash over all accounts (fee account and insurance fund included) = deposits − withdrawals;
- Σ position size per instrument = 0;
- no user account ends a command with negative equity unless an ADL event named it in that
  command — accounts that cannot be liquidated (a position in a halted market: no
  liquidation on a stale price) excepted, and accounts whose deleveraging is blocked
  (``DeleveragingBlocked``: no counterparty could take the position without being left
  with a debt; deleveraging.py) while they still hold a position; an account with
  positions and no maintenance requirement (a hedged option spread, not liquidatable) may
  show negative standard-mode equity, but not once its long options count at their marks;
  so no account is ever left with a debt and no position;
- the fee account can pay every unsettled funding receipt (its cash ≥ Σ pending funding);
- delisted options have no positions, orders, conditional orders or TWAPs, or marks;
- the advanced-order invariants (advanced_invariants.py): stop-losses and take-profits
  (reduce-only or not, on mark, index and last trade) and TWAPs mixed in, through
  liquidations (their orders are cancelled), ADL and expiries.
At the end: replay gives the same state hash, and the same events and hash with the pre-trade
screen off (``Margin.remember`` keeps nothing); the snapshot round-trips.
"""

from __future__ import annotations

from hypothesis import currently_in_test_context, event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from clearway.domain.accounts import MarginMode
from clearway.domain.commands import (
    CancelAll, CancelOrder, Deposit, ForcedWithdrawal, OracleUpdate, PlaceOrder, SetMarginMode, Withdraw,
)
from clearway.domain.events import (
    BackstopTransfer, Deleveraged, DeleveragingBlocked, FundingPaid, LiquidationEnded, LiquidationFill,
    LiquidationStarted, MarketHalted, OptionsExpired, Rejected, Trade,
)
from clearway.domain.funding import RATE_SCALE
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND
from clearway.domain.instruments import Kind, OptionType
from clearway.domain.liquidation import eligible
from clearway.domain.accounts import Account
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import state_hash
from advanced_invariants import check_advanced_orders
from clearway.domain.commands import PlaceTwap
from clearway.domain.conditional import rises, source_price
from lifecycle_support import FUND_OWNER, MINUTE, lifecycle_genesis, lifecycle_perp, replay_events, reports
from option_support import flat_expiry
from support import BTC, TICK, Exchange, option_spec, usd

START = 1_678_000_000_000            # 2023-03-05 07:06:40 UTC
EXPIRIES = (1_678_003_200_000, 1_678_089_600_000)  # 05MAR23 and 06MAR23 08:00 UTC
_COUNTED = (Trade, LiquidationStarted, LiquidationFill, BackstopTransfer, Deleveraged, DeleveragingBlocked,
            OptionsExpired, FundingPaid, MarketHalted)


def _options():
    specs = []
    for expiry in EXPIRIES:
        for strike, kind in ((20_000, OptionType.PUT), (22_000, OptionType.CALL), (24_000, OptionType.CALL)):
            spec = option_spec(1 + len(specs), strike, kind)
            specs.append(type(spec)(**{**{f: getattr(spec, f) for f in spec.__struct_fields__}, "expiry_ms": expiry,
                                       "instrument_id": 1 + len(specs)}))
    return specs


def long_option_value(state, account: Account) -> int:
    """Σ long option size · mark (micro-USDC, rounded down) of a standard-mode account, which
    its equity counts at 0 (exchange-rules.md "Standard margin"); 0 in portfolio mode."""
    if account.margin_mode is MarginMode.PORTFOLIO:
        return 0
    total = 0
    for instrument, position in account.positions.items():
        spec = state.instruments[instrument]
        if spec.kind == Kind.OPTION and position.size > 0:
            total += position.size * state.marks[instrument] // spec.size_scale
    return total


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        genesis = lifecycle_genesis(instruments=[lifecycle_perp(maker_fee_ppm=-100, taker_fee_ppm=500), *_options()],
                                    oracle_max_move_ppm=100_000, default_funding_rate=RATE_SCALE // 2_000)
        self.ex = Exchange(genesis)
        self.accounts: list[int] = []
        self.price = 22_000.0
        self.request_id = 0
        self.last_events: list = []
        self.last_oracle = START
        self.maker: int | None = None
        self.blocked: set[int] = set()  # accounts whose last liquidation pass ended blocked

    # -- helpers -------------------------------------------------------------------------
    def _run(self, command_type, **fields):
        self.last_events = self.ex.run(command_type, **fields)
        blocked_now: set[int] = set()
        for e in self.last_events:
            if isinstance(e, DeleveragingBlocked):
                blocked_now.add(e.account)
            elif isinstance(e, LiquidationEnded):    # the account's last pass decides
                (self.blocked.add if e.account in blocked_now else self.blocked.discard)(e.account)
                blocked_now.discard(e.account)
        if not currently_in_test_context():  # a regression example run as a plain test
            return self.last_events
        for e in self.last_events:
            if isinstance(e, Rejected):
                event(f"rejected {e.code.name}")
            elif type(e) in _COUNTED:
                event(type(e).__name__)
        return self.last_events

    def _oracle(self):
        ex = self.ex
        expiries = tuple(flat_expiry(self.price, 0.8, ex.ts, expiry_ms=e) for e in EXPIRIES if e > ex.ts)
        events = self._run(OracleUpdate, underlying="BTC", reports=reports(ex, self.price, expiries=expiries))
        if not isinstance(events[-1], Rejected):
            self.last_oracle = ex.ts
        return events

    # -- rules ---------------------------------------------------------------------------
    @initialize(amounts=st.lists(st.integers(2_000, 200_000), min_size=4, max_size=4),
                fund=st.sampled_from([0, 0, 5_000, 50_000]), leverage=st.floats(1.0, 18.0),
                written=st.integers(0, 4 * BTC), portfolio=st.booleans())
    def setup(self, amounts, fund, leverage, written, portfolio):
        """Four funded accounts; 2 long and 3 short the perp at ``leverage`` × 2's cash; 4
        writes calls to 5 (in portfolio mode if ``portfolio``)."""
        self.ex.ts = START
        for owner, amount in enumerate(amounts, start=1):
            self.accounts.append(self.ex.deposit(owner, usd(amount)))
        if fund:
            self.ex._deposit_id += 1
            self._run(Deposit, owner=FUND_OWNER, amount=usd(fund), deposit_id=self.ex._deposit_id)
        self._oracle()
        price = self.ex.state.marks[0]
        size = int(usd(amounts[0]) * leverage * BTC // price)
        self._run(PlaceOrder, account=3, instrument=0, side=-1, size=size, price=price)
        self._run(PlaceOrder, account=2, instrument=0, side=1, size=size, price=price, tif=2)
        if portfolio:
            self._run(SetMarginMode, account=4, mode=int(MarginMode.PORTFOLIO))
        if written:
            call = 2  # 05MAR23 22,000 C
            premium = self.ex.state.marks[call] // TICK * TICK
            self._run(PlaceOrder, account=4, instrument=call, side=-1, size=written, price=premium)
            self._run(PlaceOrder, account=5, instrument=call, side=1, size=written, price=premium, tif=2)

    @rule(owner=st.integers(1, 5), amount=st.integers(1, 20_000))
    def deposit(self, owner, amount):
        self.accounts = sorted(set(self.accounts) | {self.ex.deposit(owner, usd(amount))})

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), amount=st.integers(1, 5_000), forced=st.booleans())
    def withdraw(self, data, amount, forced):
        account = data.draw(st.sampled_from(self.accounts))
        if forced:
            self.request_id += 1
            self._run(ForcedWithdrawal, request_id=self.request_id, owner=self.ex.state.accounts[account].owner,
                      amount=usd(amount))
        else:
            self._run(Withdraw, account=account, amount=usd(amount))

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), instrument=st.integers(0, 6), side=st.sampled_from([1, -1]),
          size=st.integers(1, 3 * BTC), offset=st.integers(-30, 30), ioc=st.booleans())
    def place(self, data, instrument, side, size, offset, ioc):
        account = data.draw(st.sampled_from(self.accounts))
        mark = self.ex.state.marks.get(instrument)
        if mark is None:
            return
        step = 20 * TICK if instrument == 0 else TICK
        price = max(mark // TICK * TICK + offset * step, TICK)
        self._run(PlaceOrder, account=account, instrument=instrument, side=side, size=size, price=price,
                  tif=2 if ioc else 1)

    @precondition(lambda self: len(self.accounts) >= 2)
    @rule(data=st.data(), instrument=st.integers(0, 6), side=st.sampled_from([1, -1]),
          leverage=st.floats(0.5, 15.0), offset=st.integers(-5, 5))
    def trade(self, data, instrument, side, leverage, offset):
        """A resting order and an opposite IOC at its price: a trade sized to ``leverage`` × the
        maker's cash (so that accounts run leveraged and moves liquidate them)."""
        maker, taker = data.draw(st.permutations(self.accounts))[:2]
        self.trade_between(maker, taker, instrument, side, leverage, offset)

    def trade_between(self, maker, taker, instrument, side, leverage, offset):
        """The ``trade`` rule with its two accounts given (regression examples call it)."""
        mark = self.ex.state.marks.get(instrument)
        cash = self.ex.state.accounts[maker].cash
        if mark is None or cash <= 0:
            return
        price = max(mark // TICK * TICK + offset * TICK, TICK)
        reference = mark if instrument == 0 else self.ex.state.index["BTC"]
        size = max(int(cash * leverage * BTC // max(reference, 1)), 1)
        self._run(PlaceOrder, account=maker, instrument=instrument, side=side, size=size, price=price)
        self._run(PlaceOrder, account=taker, instrument=instrument, side=-side, size=size, price=price, tif=2)

    @rule(width=st.integers(1, 200), size=st.integers(1, 5 * BTC))
    def make_market(self, width, size):
        """A well-funded market maker (owner 9) quotes the perp around its mark."""
        if self.maker is None:
            self.maker = self.ex.deposit(9, usd(5_000_000))
            self.accounts = sorted(set(self.accounts) | {self.maker})
        mark = self.ex.state.marks[0] // TICK * TICK
        self._run(PlaceOrder, account=self.maker, instrument=0, side=1, size=size, price=max(mark - width * TICK, TICK))
        self._run(PlaceOrder, account=self.maker, instrument=0, side=-1, size=size, price=mark + width * TICK)

    @precondition(lambda self: self.ex.state.orders)
    @rule(data=st.data())
    def cancel(self, data):
        order = self.ex.state.orders[data.draw(st.sampled_from(sorted(self.ex.state.orders)))]
        self._run(CancelOrder, account=order.account, order_id=order.order_id)

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), instrument=st.sampled_from((0, 0, 0, 2, 5)), kind=st.sampled_from(tuple(range(3, 7))),
          source=st.sampled_from((1, 2, 3)), percent=st.sampled_from((0.1, 0.5, 2.0, 8.0)), close=st.booleans())
    def conditional(self, data, instrument, kind, source, percent, close):
        """A stop or take-profit ``percent`` beyond the trigger source; with ``close`` a
        reduce-only one closing the account's position (a stop-loss), else 0.1 BTC."""
        account = data.draw(st.sampled_from(self.accounts))
        state = self.ex.state
        if instrument not in state.marks:
            return
        position = state.accounts[account].position_size(instrument)
        side = -1 if position > 0 else 1
        close = close and position != 0
        size = abs(position) if close else BTC // 10
        current = source_price(state, instrument, source) or state.marks[instrument]
        factor = 1 + percent / 100 if rises(kind, side) else 1 - percent / 100
        trigger = max(int(current * factor) // TICK * TICK, TICK)
        price = max(state.marks[instrument] // TICK * TICK, TICK) if kind in (4, 6) else 0  # the limit kinds
        self._run(PlaceOrder, account=account, instrument=instrument, side=side, size=size, price=price,
                  order_type=kind, trigger=source, trigger_price=trigger, reduce_only=close)

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), size=st.integers(10, BTC), intervals=st.integers(1, 10))
    def twap(self, data, side, size, intervals):
        account = data.draw(st.sampled_from(self.accounts))
        self._run(PlaceTwap, account=account, instrument=0, side=side, size=size, duration_ms=intervals * 300_000,
                  interval_ms=300_000, price_tolerance_ppm=5_000)

    @precondition(lambda self: self.accounts)
    @rule(data=st.data())
    def switch_mode(self, data):
        account = data.draw(st.sampled_from(self.accounts))
        mode = MarginMode.PORTFOLIO if self.ex.state.accounts[account].margin_mode == MarginMode.STANDARD \
            else MarginMode.STANDARD
        self._run(SetMarginMode, account=account, mode=int(mode))

    @rule(move=st.floats(-0.01, 0.01), seconds=st.integers(1, 50))
    def small_move(self, move, seconds):
        self.ex.ts += seconds * 1000
        self.price = round(self.price * (1 + move), 2)
        self._oracle()

    @rule(move=st.floats(-0.30, 0.30))
    def big_move(self, move):
        self.ex.ts = max(self.ex.ts, self.last_oracle) + 61_000   # beyond the max-move window
        self.price = round(max(self.price * (1 + move), 1_000.0), 2)
        self._oracle()

    @rule(minutes=st.sampled_from([1, 7, 30, 59, 61, 120, 400, 1_500]), quote=st.booleans())
    def time_passes(self, minutes, quote):
        self.ex.ts += minutes * MINUTE
        if quote:
            self._oracle()      # or not: the market may halt
        else:
            self._run(CancelAll, account=self.accounts[0] if self.accounts else 2)

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def cash_is_conserved_and_positions_sum_to_zero(self):
        state = self.ex.state
        assert sum(a.cash for a in state.accounts.values()) == state.total_deposits - state.total_withdrawals
        for instrument in state.instruments:
            assert sum(a.position_size(instrument) for a in state.accounts.values()) == 0

    @invariant()
    def no_negative_equity_without_deleveraging(self):
        state = self.ex.state
        deleveraged = {e.account for e in self.last_events if isinstance(e, Deleveraged)}
        for account_id in self.accounts:
            account = state.accounts[account_id]
            if account_id in deleveraged or (account.positions and not eligible(state, account)):
                continue
            if account_id in self.blocked and account.positions:
                continue  # left visibly bankrupt with its positions, retried at every detection
            health = state.margin.health(account)
            assert health is not None
            if health.maintenance_margin == 0 and account.positions:
                # Not liquidatable (spec: MM > 0 and equity < MM), e.g. a call spread whose
                # short leg went in the money: equity counts the short at its mark and the
                # long at 0 (standard mode), so it may be negative while the account is
                # solvent — what it holds is worth at least what it owes.
                assert health.equity + long_option_value(state, account) >= 0, (account_id, health, self.last_events)
            else:
                assert health.equity >= 0, (account_id, health, self.last_events)

    @invariant()
    def fee_account_can_pay_unsettled_funding(self):
        state = self.ex.state
        owed = sum(state.margin.pending_funding(a) for a in state.accounts.values())
        assert state.accounts[FEE_ACCOUNT].cash - owed >= 0

    @invariant()
    def delisted_options_are_gone(self):
        state = self.ex.state
        for instrument in state.delisted:
            assert instrument not in state.marks
            assert not any(instrument in a.positions for a in state.accounts.values())
            assert not any(o.instrument == instrument for o in state.orders.values())
            assert not any(c.instrument == instrument for c in state.conditionals.values())
            assert not any(t.instrument == instrument for t in state.twaps.values())

    @invariant()
    def advanced_orders_consistent(self):
        check_advanced_orders(self.ex.state)

    def teardown(self):
        state = self.ex.state
        assert state_hash(decode_snapshot(encode_snapshot(state))) == state_hash(state)
        events, replayed = replay_events(self.ex)
        assert replayed == state_hash(state)
        # the pre-trade screen (kept by every liquidation screen) changes no decision
        assert replay_events(self.ex, screen=False) == (events, replayed)


LifecycleMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=80, deadline=None)
TestLifecycleMachine = LifecycleMachine.TestCase


# -- regression examples (found by this machine; plain tests calling its rules) ------------
def _check(machine: LifecycleMachine) -> None:
    for name in ("cash_is_conserved_and_positions_sum_to_zero", "no_negative_equity_without_deleveraging",
                 "fee_account_can_pay_unsettled_funding", "delisted_options_are_gone", "advanced_orders_consistent"):
        getattr(machine, name)()


def test_adl_never_makes_a_long_option_holder_pay():
    """Account 2 (long perp, short put) goes bankrupt on a −25 % move with an empty fund. ADL
    used to buy its put back at a negative price (account 4 paid 4,987 USDC to have its long
    put closed, went bankrupt and account 5 paid 2,987 USDC for a call marked 0). Now the put
    goes at price 0 and the perpetual's counterparty carries the deficit."""
    m = LifecycleMachine()
    m.setup(amounts=[20_665, 33_318, 2_000, 2_000], fund=0, leverage=11.98, written=2, portfolio=False)
    m.trade_between(4, 2, instrument=1, side=1, leverage=2.0, offset=0)
    _check(m)
    m.big_move(-0.25)
    _check(m)
    adl = [e for e in m.last_events if isinstance(e, Deleveraged)]
    assert [(e.instrument, e.account, e.counterparty) for e in adl] == [(1, 2, 4), (0, 2, 3)]
    assert adl[0].quote == 0 and adl[0].price == 0          # a short option bought back at ≥ 0
    assert m.ex.state.accounts[2].cash == 0 and not m.ex.state.accounts[2].positions
    assert all(e.account == 2 for e in m.last_events if isinstance(e, LiquidationStarted))
    m.teardown()


def test_a_hedged_call_spread_in_the_money_is_not_liquidated():
    """Account 5 is long 22,000 calls (written by 4) and sells as many 24,000 calls; after
    +25 % its standard-mode equity is −222 USDC (the short leg at its mark, the long at 0)
    with no maintenance requirement (the expiry's maximum loss is 0): not liquidatable, and
    solvent once the long leg counts. The writer 4 stays solvent (5,000 USDC: its calls go
    to the insurance fund, which stays solvent too). With 2,098 USDC, as first found, 4 is
    bankrupt and is deleveraged against 5's long calls, which breaks the spread (the empty
    fund used to take 4's calls into negative equity instead)."""
    m = LifecycleMachine()
    m.setup(amounts=[2_000, 2_000, 5_000, 2_000], fund=0, leverage=1.0, written=6_223, portfolio=False)
    m.trade_between(5, 2, instrument=3, side=-1, leverage=7.0, offset=0)
    m.big_move(0.25)
    _check(m)
    state = m.ex.state
    account = state.accounts[5]
    health = state.margin.health(account)
    assert health.maintenance_margin == 0 and health.equity < 0
    assert health.equity + long_option_value(state, account) > 0
    assert not any(isinstance(e, LiquidationStarted) and e.account == 5 for e in m.last_events)
    assert state.margin.health(state.accounts[INSURANCE_FUND]).equity >= 0
    m.teardown()


def test_adl_of_long_options_does_not_leave_the_counterparty_in_debt():
    """Account 3 is short the perpetual and long 22,000 calls written by account 4 (5x its
    cash). After +25 % in one oracle step, 3's standard-mode equity (its long calls at 0) is
    −31 USDC but its net value (the calls at their mark, 2,499.75 USDC) is +2,468.6: it is
    liquidatable, not bankrupt. 4 is bankrupt: its calls cost 2,499.75 USDC against 2,032.13
    of cash. ADL used to close 3's calls at their mark against 4, the only short, and leave 4
    with no position and −467.6 USDC of cash, which nothing covered. Now the most underwater
    account is liquidated first and a bankrupt account is never deleveraged against: the
    empty fund cannot take 4's calls (they are worth more than 4 can pay), so 4 is
    deleveraged against 3 at its bankruptcy price — 3 is paid 2,032.13 USDC for its calls
    and absorbs 4's deficit out of its profit on them — 4 ends at exactly zero, and 3 is no
    longer liquidatable."""
    m = LifecycleMachine()
    m.setup(amounts=[2_000, 2_000, 2_000, 2_000], fund=0, leverage=4.0, written=0, portfolio=False)
    m.trade_between(2, 3, instrument=0, side=1, leverage=1.0, offset=0)
    m.trade_between(4, 3, instrument=2, side=-1, leverage=5.0, offset=0)
    m.big_move(0.25)
    adl = [e for e in m.last_events if isinstance(e, Deleveraged)]
    assert [(e.instrument, e.account, e.counterparty, e.quote) for e in adl] == [(2, 4, 3, -2_032_133_150)]
    assert [e.account for e in m.last_events if isinstance(e, LiquidationStarted)] == [4]
    assert not any(isinstance(e, (BackstopTransfer, DeleveragingBlocked)) for e in m.last_events)
    state = m.ex.state
    assert state.accounts[4].cash == 0 and not state.accounts[4].positions
    assert state.margin.health(state.accounts[3]).equity == 2_000_990_280
    _check(m)
    m.teardown()


def test_adl_of_short_options_only_leaves_no_debt_when_an_otm_call_comes_last():
    """Account 4 writes one lot of the 22,000 call (instrument 2) to 5 and 0.6363 of the
    20,000 put (instrument 1) to 3; after −25 % it is bankrupt (equity −226.98 USDC) with
    an empty fund and only short options. ADL used to close them by instrument id: the put
    at its MMR-proportional bankruptcy quote, which left the call's share of the deficit
    (its MM is 0.075·S, its mark 0) to the call — closed last at a price clamped to 0, so
    4 ended with no position and −9,317 micro-USDC that nothing covered. Now the call,
    which can carry nothing, goes first at 0 and the put, last, at −cash: 4 ends at zero."""
    m = LifecycleMachine()
    m.setup(amounts=[2_000, 2_000, 2_000, 2_000], fund=0, leverage=1.0, written=1, portfolio=False)
    m.big_move(0.0)
    m.big_move(0.0)
    _check(m)
    m.trade_between(4, 3, instrument=1, side=-1, leverage=7.0, offset=0)
    _check(m)
    m.big_move(-0.25)
    adl = [(e.instrument, e.account, e.counterparty, e.price, e.quote) for e in m.last_events
           if isinstance(e, Deleveraged)]
    assert adl == [(2, 4, 5, 0, 0), (1, 4, 3, 3_143_282_571, -2_000_070_700)]
    state = m.ex.state
    assert state.accounts[4].cash == 0 and not state.accounts[4].positions
    _check(m)
    m.big_move(0.0)
    _check(m)
    m.teardown()
