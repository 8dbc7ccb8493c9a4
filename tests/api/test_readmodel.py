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
from lifecycle_support import advance, lifecycle_perp, liquidation_exchange, oracle  # noqa: E402
from support import BTC, usd  # noqa: E402


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
        "open": {i: (o.account, o.instrument.instrument_id, o.side, o.price, o.remaining)
                 for i, o in model.orders.items() if o.state == "open"},
        "open_by_account": {a: sorted(orders) for a, orders in model.open_by_account.items() if orders},
        "books": {i: (dict(b.bids), dict(b.asks)) for i, b in model.books.items()},
    }


def assert_consistent(model: ReadModel, ex) -> None:
    assert _view(model) == _view(_fresh(ex))


class ReadModelMachine(LifecycleMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model, self.reported = _attach(self.ex)

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
    a = ex.deposit(0xA1, usd(600))
    b = ex.deposit(0xB2, usd(1_000_000))
    c = ex.deposit(0xC3, usd(1_000_000))
    oracle(ex, 51_010)
    ex.place(b, SELL, BTC // 10, usd(51_010))
    ex.place(a, BUY, BTC // 10, usd(51_010))
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
