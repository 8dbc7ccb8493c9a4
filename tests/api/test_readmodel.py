"""The API's read model stays consistent with the domain state through the market
lifecycle: oracle updates and clock-driven marks, funding, liquidations (trades whose
taker is the liquidated account, order id 0), deleveraging, option expiry and forced
withdrawals. The stateful lifecycle machine of tests/domain drives ``apply``; every
command's events are fed to a ReadModel, and after every step it must equal a ReadModel
freshly loaded from a snapshot of the state (open orders, books, marks, index, owners,
listed and delisted instruments)."""

from __future__ import annotations

import concurrent.futures
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "domain"))

from test_stateful_lifecycle import LifecycleMachine  # noqa: E402

from clearway.api.readmodel import Changes, ReadModel, Snapshot  # noqa: E402
from clearway.domain import events as ev  # noqa: E402
from clearway.domain.orders import BUY, SELL  # noqa: E402
from lifecycle_support import advance, leveraged_long, lifecycle_perp, liquidation_exchange, oracle  # noqa: E402
from support import BTC, usd  # noqa: E402  (tests/support.py)


class _StateNode:
    """What ReadModel needs of a node here: ``query`` on the live state."""

    def __init__(self, ex) -> None:
        self.ex = ex

    def query(self, fn):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(fn(self.ex.state))
        return future


def _fresh(ex) -> ReadModel:
    model = ReadModel(_StateNode(ex))
    model._load(Snapshot(ex.state))
    return model


def _attach(ex) -> tuple[ReadModel, list[Changes]]:
    """A read model fed with every command ``ex`` runs from now on; the Changes it reports."""
    model = _fresh(ex)
    reported: list[Changes] = []
    run = ex.run

    def run_and_feed(command_type, **fields):
        events = run(command_type, **fields)
        command = ex.commands[-1]
        changes = model.apply([(command.seq, command, events)])
        if changes is not None:
            reported.append(changes)
        return events

    ex.run = run_and_feed
    return model, reported


def _view(model: ReadModel) -> dict:
    return {
        "seq": model.seq,
        "listed": sorted(model.instruments),
        "names": sorted(model.by_name),
        "delisted": sorted(model.delisted),
        "owners": dict(model.owners),
        "marks": dict(model.marks),
        "index": dict(model.index),
        # (a triggered order in the book is a plain order to the state: its trigger is history)
        "open": {i: (o.account, o.instrument.instrument_id, o.side, o.price, o.remaining, o.state, o.display,
                     o.shown if o.display else 0, o.expire_at,
                     (o.order_type, o.trigger, o.trigger_price) if o.state == "untriggered" else None)
                 for i, o in model.orders.items() if o.state in ("open", "untriggered")},
        "twaps": {i: (t.account, t.instrument.instrument_id, t.side, t.size, t.filled, t.intervals_left)
                  for i, t in model.twaps.items() if t.state == "open"},
        "open_by_account": {a: sorted(orders) for a, orders in model.open_by_account.items() if orders},
        "books": {i: (dict(b.bids), dict(b.asks)) for i, b in model.books.items()},
    }


def assert_consistent(model: ReadModel, ex) -> None:
    assert _view(model) == _view(_fresh(ex))


class ReadModelMachine(LifecycleMachine):
    """The domain's lifecycle machine with only the read-model invariant: the domain's own
    invariants are checked by tests/domain (redefining a name without @invariant drops it)."""

    def __init__(self) -> None:
        super().__init__()
        self.model, self.reported = _attach(self.ex)

    def cash_is_conserved_and_positions_sum_to_zero(self): ...
    def no_negative_equity_without_deleveraging(self): ...
    def fee_account_can_pay_unsettled_funding(self): ...
    def delisted_options_are_gone(self): ...
    def advanced_orders_consistent(self): ...
    def teardown(self): ...

    @invariant()
    def read_model_matches_the_state(self):
        assert_consistent(self.model, self.ex)


TestReadModelThroughTheLifecycle = ReadModelMachine.TestCase
TestReadModelThroughTheLifecycle.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck))


def test_liquidation_fill_is_flagged_and_accounts_are_reported():
    """A liquidation fill against the book (the domain's spec example: the taker is the
    liquidated account, order id 0): the trade carries Deribit's ``liquidation: "T"``,
    both accounts get a portfolio update, and the model still equals a fresh snapshot."""
    ex = liquidation_exchange(lifecycle_perp(imf_ppm=100_000, mmf_ppm=100_000), liquidation_smmr_ppm=100_000)
    model, reported = _attach(ex)
    a, _, c = leveraged_long(ex, 600, 51_010)
    ex.place(c, BUY, BTC, usd(49_999))
    advance(ex, 1_000)
    events = oracle(ex, 50_000)
    fill = next(e for e in events if type(e) is ev.LiquidationFill)
    trade = next(t for t in model.trades[0] if t.trade_id == fill.trade_id)
    assert trade.taker_order_id == 0
    assert trade.user_json(a)["liquidation"] == "T" and trade.user_json(c)["liquidation"] == "T"
    assert trade in model.trades_by_account[a]
    assert {a, c} <= reported[-1].accounts
    assert model.marks[0] == ex.state.marks[0] and model.index["BTC"] == ex.state.index["BTC"]
    assert_consistent(model, ex)


def test_get_instruments_moves_expired_options_to_expired_true():
    """After an expiry the options leave the listing and appear with ``expired=true``."""
    class Scripted(ReadModelMachine):
        def _run(self, command_type, **fields):  # outside Hypothesis: no event() statistics
            self.last_events = self.ex.run(command_type, **fields)
            return self.last_events

    machine = Scripted()
    machine.setup(amounts=[50_000, 50_000, 50_000, 50_000], fund=0, leverage=2.0, written=10_000, portfolio=False)
    machine.time_passes(minutes=1_500, quote=True)
    machine.time_passes(minutes=1_500, quote=True)
    state = machine.ex.state
    assert state.delisted, "the options should have expired"
    model = machine.model
    assert set(model.delisted) == set(state.delisted)
    assert not set(model.instruments) & set(state.delisted)
    assert all(not i.info["is_active"] for i in model.delisted.values())
    assert_consistent(model, machine.ex)


# -- advanced orders (issue 9) --------------------------------------------------------------
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule  # noqa: E402

from clearway.domain.commands import CancelOrders, PlaceOrder, PlaceTwap  # noqa: E402
from support import TICK, Exchange, perp_spec  # noqa: E402


class AdvancedOrdersMachine(RuleBasedStateMachine):
    """Icebergs, conditional orders on the three sources, good-til-time, TWAP parents,
    amendments, batch and single cancels, price moves and time passing on one perpetual;
    the read model fed with the events must equal a fresh snapshot after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.ex = Exchange()
        self.model, _ = _attach(self.ex)
        self.price = usd(60_000)
        self.accounts: list[int] = []

    @initialize()
    def setup(self):
        self.accounts = [self.ex.deposit(owner, usd(10_000_000)) for owner in (0x11, 0x22, 0x33)]
        self.ex.marks(self.price)

    def _open_ids(self) -> list[int]:
        state = self.ex.state
        return sorted([*state.orders, *state.conditionals, *state.twaps])

    @rule(who=st.integers(0, 2), side=st.sampled_from([1, -1]), ticks=st.integers(-30, 30),
          size=st.integers(1, 3 * BTC // 10), display=st.sampled_from([0, 0, 100, 500]),
          ttl=st.sampled_from([0, 0, 2_000, 60_000]), ioc=st.booleans())
    def limit(self, who, side, ticks, size, display, ttl, ioc):
        self.ex.place(self.accounts[who], side, size, self.price + ticks * 10 * TICK,
                      tif=2 if ioc else 1, display_size=display, expire_at=self.ex.ts + ttl if ttl else 0)

    @rule(who=st.integers(0, 2), side=st.sampled_from([1, -1]), kind=st.integers(3, 6), source=st.integers(1, 3),
          ticks=st.integers(-40, 40), size=st.integers(1, BTC // 10))
    def conditional(self, who, side, kind, source, ticks, size):
        limit = self.price + ticks * 5 * TICK if kind in (4, 6) else 0
        self.ex.place(self.accounts[who], side, size, limit, order_type=kind, trigger=source,
                      trigger_price=self.price + ticks * 10 * TICK)

    @rule(who=st.integers(0, 2), side=st.sampled_from([1, -1]), intervals=st.integers(10, 20))
    def twap(self, who, side, intervals):
        self.ex.run(PlaceTwap, account=self.accounts[who], instrument=0, side=side, size=intervals * 10,
                    duration_ms=intervals * 30_000, interval_ms=30_000, price_tolerance_ppm=10_000)

    @rule(move=st.integers(-200, 200))
    def move(self, move):
        self.price = max(self.price + move * 10 * TICK, usd(1_000))
        self.ex.marks(self.price)

    @rule(seconds=st.sampled_from([1, 5, 31, 95]))
    def time_passes(self, seconds):
        self.ex.ts += seconds * 1000
        self.ex.marks(self.price)

    @rule(data=st.data())
    def cancel(self, data):
        ids = self._open_ids()
        if ids:
            order_id = data.draw(st.sampled_from(ids))
            owner = self._owner_of(order_id)
            self.ex.cancel(owner, order_id)

    @rule(data=st.data())
    def batch_cancel(self, data):
        ids = self._open_ids()
        if ids:
            picked = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=5, unique=True))
            self.ex.run(CancelOrders, account=self._owner_of(picked[0]), order_ids=tuple(picked))

    @rule(data=st.data(), size=st.integers(1, 3 * BTC // 10), ticks=st.integers(-30, 30))
    def amend(self, data, size, ticks):
        resting = sorted(self.ex.state.orders)
        if resting:
            order = self.ex.state.orders[data.draw(st.sampled_from(resting))]
            self.ex.amend(order.account, order.order_id, size, self.price + ticks * 10 * TICK)

    def _owner_of(self, order_id: int) -> int:
        state = self.ex.state
        found = state.orders.get(order_id) or state.conditionals.get(order_id) or state.twaps.get(order_id)
        return found.account

    @invariant()
    def read_model_matches_the_state(self):
        assert_consistent(self.model, self.ex)


TestReadModelWithAdvancedOrders = AdvancedOrdersMachine.TestCase
TestReadModelWithAdvancedOrders.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck))
