"""Hypothesis stateful test: random commands, invariants after every command.

Invariants: the book is never crossed after matching; level totals (visible sizes) and
account aggregates agree with the orders; Σ position size per instrument = 0; Σ cash (all
accounts, fee account included) = Σ deposits − Σ withdrawals; no order fills beyond its
size; FIFO within a price level (an iceberg refill counts as a new arrival); snapshot round
trip and replay give the same state hash.

The mix includes the advanced order types (issue 9): conditional orders on mark, index and
last trade price (some on the wrong side, some reduce-only), icebergs, good-til-time orders
with the clock moving, TWAP parents and batch cancels; ``advanced_invariants`` adds their
invariants (no waiting trigger already reached, reduce-only ones still reduce, iceberg
slices, nothing past its expiry, client ids).
"""

from __future__ import annotations

from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from advanced_invariants import check_advanced_orders
from clearway.domain.commands import CancelOrders, PlaceTwap
from clearway.domain.conditional import rises, source_price
from clearway.domain.events import IcebergRefilled, OrderAccepted, OrderAmended, OrderTriggered, Rejected, Trade
from clearway.domain.genesis import GenesisConfig
from clearway.domain.orders import OrderType, TimeInForce
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import state_hash
from support import BTC, TICK, Exchange, perp_spec, usd

MID = usd(25_000)


class ExchangeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        genesis = GenesisConfig(instruments=[perp_spec(0), perp_spec(1, maker_fee_ppm=0, taker_fee_ppm=1000)])
        self.ex = Exchange(genesis)
        self.ex.marks(MID, marks={1: MID})
        self.accounts: list[int] = []
        self.filled: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.stamp: dict[int, int] = {}   # order id → seq of the command that gave it priority

    def _record(self, events) -> None:
        seq = self.ex.state.last_seq
        for e in events:
            if isinstance(e, Rejected):
                event(f"rejected {e.code.name}")
            if isinstance(e, OrderAccepted):
                event("accepted")
                self.sizes[e.order_id] = e.size
                self.stamp[e.order_id] = seq
            elif isinstance(e, OrderAmended):
                self.sizes[e.order_id] = e.size
                if not e.priority_kept:
                    self.stamp[e.order_id] = seq
            elif isinstance(e, IcebergRefilled):
                event("iceberg refill")
                self.stamp[e.order_id] = seq
            elif isinstance(e, OrderTriggered):
                event("triggered")
            elif isinstance(e, Trade):
                event("trade")
                for order_id in (e.maker_order_id, e.taker_order_id):
                    self.filled[order_id] = self.filled.get(order_id, 0) + e.size

    @initialize(amounts=st.lists(st.integers(5_000, 500_000), min_size=3, max_size=3))
    def traders(self, amounts):
        for owner, amount in enumerate(amounts, start=1):
            self.accounts.append(self.ex.deposit(owner, usd(amount)))

    @rule(owner=st.integers(1, 6), amount=st.integers(1, 50_000))
    def deposit(self, owner, amount):
        account = self.ex.deposit(owner, usd(amount))
        if account not in self.accounts:
            self.accounts.append(account)

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), amount=st.integers(1, 2_000))
    def withdraw(self, data, amount):
        self._record(self.ex.withdraw(data.draw(st.sampled_from(self.accounts)), usd(amount)))

    @rule(move=st.integers(-30, 30), instrument=st.sampled_from((0, 1)))
    def mark(self, move, instrument):
        price = MID + move * 100 * TICK
        self._record(self.ex.marks(price if instrument == 0 else self.ex.state.marks[0],
                                   marks={1: price} if instrument == 1 else {}))

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), offset=st.integers(-8, 8), size=st.integers(1, 3 * BTC),
          tif=st.sampled_from((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)),
          market=st.sampled_from((False,) * 5 + (True,)), post_only=st.sampled_from((False, False, True)), reduce_only=st.sampled_from((False, False, False, True)), instrument=st.sampled_from((0, 1)))
    def place(self, data, side, offset, size, tif, market, post_only, reduce_only, instrument):
        account = data.draw(st.sampled_from(self.accounts))
        price = MID + offset * TICK  # around a fixed mid so that orders meet
        kw = dict(tif=tif, post_only=post_only and not market, reduce_only=reduce_only)
        if market:
            kw["order_type"] = OrderType.MARKET
        self._record(self.ex.place(account, side, size, max(price, TICK), instrument=instrument, **kw))

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), offset=st.integers(-8, 8), size=st.integers(1, BTC),
          instrument=st.sampled_from((0, 1)))
    def quote(self, data, side, offset, size, instrument):
        """A plain GTC limit order: the liquidity the other rules trade against."""
        account = data.draw(st.sampled_from(self.accounts))
        self._record(self.ex.place(account, side, size, MID + offset * TICK, instrument=instrument))

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), size=st.integers(2, 3 * BTC), display=st.integers(1, BTC),
          offset=st.integers(-8, 8), instrument=st.sampled_from((0, 1)),
          expire_in=st.sampled_from((0, 0, 1_000, 30_000)))
    def iceberg(self, data, side, size, display, offset, instrument, expire_in):
        """An iceberg (sometimes good-til-time) limit order around the mid."""
        account = data.draw(st.sampled_from(self.accounts))
        self._record(self.ex.place(account, side, size, MID + offset * TICK, instrument=instrument,
                                   display_size=min(display, size), expire_at=self.ex.ts + expire_in if expire_in else 0))

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), kind=st.sampled_from(tuple(range(3, 7))),
          source=st.sampled_from((1, 2, 3)), distance=st.sampled_from((-1, 1, 2, 5, 100, 1_000, 2_000)),
          size=st.integers(1, BTC), offset=st.integers(-8, 8), instrument=st.sampled_from((0, 1)),
          reduce_only=st.sampled_from((False, False, True)), expire_in=st.sampled_from((0, 0, 20_000)))
    def conditional(self, data, side, kind, source, distance, size, offset, instrument, reduce_only, expire_in):
        """A stop or take-profit order ``distance`` ticks beyond the current trigger-source
        price on the side where it waits (−1: the wrong side, rejected)."""
        account = data.draw(st.sampled_from(self.accounts))
        current = source_price(self.ex.state, instrument, source) or MID
        step = TICK if rises(kind, side) else -TICK
        trigger = max(current // TICK * TICK + distance * step, TICK)
        self._record(self.ex.place(account, side, size, MID + offset * TICK, instrument=instrument, order_type=kind,
                                   trigger=source, trigger_price=trigger, reduce_only=reduce_only,
                                   expire_at=self.ex.ts + expire_in if expire_in else 0))

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), kind=st.sampled_from(tuple(range(3, 7))),
          source=st.sampled_from((1, 2)), size=st.integers(1, BTC // 2), instrument=st.sampled_from((0, 1)))
    def stop_near(self, data, side, kind, source, size, instrument):
        """A conditional order one tick from the mark or index: the next move may fire it."""
        self.conditional(data, side, kind, source, 1, size, 0, instrument, False, 0)

    @precondition(lambda self: self.accounts)
    @rule(data=st.data(), side=st.sampled_from((1, -1)), size=st.integers(5, BTC), intervals=st.integers(1, 10),
          limit=st.sampled_from((None, -3, 0, 3)), tolerance=st.integers(0, 2_000), instrument=st.sampled_from((0, 1)))
    def twap(self, data, side, size, intervals, limit, tolerance, instrument):
        account = data.draw(st.sampled_from(self.accounts))
        interval = 600_000 // intervals if intervals > 1 else 300_000
        limit_price = 0 if limit is None else MID + side * limit * TICK
        self._record(self.ex.run(PlaceTwap, account=account, instrument=instrument, side=side, size=size,
                                 duration_ms=interval * max(intervals, 1), interval_ms=interval,
                                 price_tolerance_ppm=tolerance, limit_price=limit_price))

    @rule(ms=st.sampled_from((0, 500, 1_000, 20_000, 60_000, 200_000)))
    def advance(self, ms):
        """Time passes (good-til-time expiries, TWAP intervals) and the same marks are set again."""
        self.ex.ts += ms
        state = self.ex.state
        self._record(self.ex.marks(state.marks[0], index=state.index["BTC"], marks={1: state.marks[1]}))

    @precondition(lambda self: self.accounts and (self.ex.state.orders or self.ex.state.conditionals
                                                  or self.ex.state.twaps))
    @rule(data=st.data(), bogus=st.booleans())
    def batch_cancel(self, data, bogus):
        state = self.ex.state
        ids = sorted([*state.orders, *state.conditionals, *state.twaps])
        account = data.draw(st.sampled_from(self.accounts))
        chosen = data.draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=6))
        if bogus:
            chosen.append(state.next_order_id + 7)
        self._record(self.ex.run(CancelOrders, account=account, order_ids=tuple(chosen)))

    @precondition(lambda self: self.ex.state.orders)
    @rule(data=st.data())
    def cancel(self, data):
        order = self.ex.state.orders[data.draw(st.sampled_from(sorted(self.ex.state.orders)))]
        self._record(self.ex.cancel(order.account, order_id=order.order_id))

    @precondition(lambda self: len(self.ex.state.orders) > 8)
    @rule(data=st.data(), instrument=st.sampled_from((-1, 0, 1)))
    def cancel_all(self, data, instrument):
        self._record(self.ex.cancel_all(data.draw(st.sampled_from(self.accounts)), instrument))

    @precondition(lambda self: self.ex.state.orders)
    @rule(data=st.data(), size_delta=st.integers(-BTC, BTC), offset=st.integers(-5, 5))
    def amend(self, data, size_delta, offset):
        order = self.ex.state.orders[data.draw(st.sampled_from(sorted(self.ex.state.orders)))]
        self._record(self.ex.amend(order.account, order.order_id, max(order.size + size_delta, 1),
                                   max(order.price + offset * TICK, TICK)))

    # -- invariants ------------------------------------------------------------------
    @invariant()
    def book_not_crossed_and_levels_consistent(self):
        for book in self.ex.state.books.values():
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is None or ask is None or bid < ask
            for levels in (book.bids, book.asks):
                for price, level in levels.items():
                    orders = list(level.orders())
                    assert orders and level.count == len(orders)
                    assert level.total == sum(o.shown if o.display else o.remaining for o in orders)
                    assert all(o.price == price and o.remaining > 0 for o in orders)
                    stamps = [self.stamp[o.order_id] for o in orders]
                    assert stamps == sorted(stamps), "FIFO within a level"
            assert book.bid_prices == sorted(book.bids) and sorted(book.ask_keys) == book.ask_keys

    @invariant()
    def positions_sum_to_zero_and_cash_is_conserved(self):
        state = self.ex.state
        for instrument in state.instruments:
            assert sum(a.position_size(instrument) for a in state.accounts.values()) == 0
        assert sum(a.cash for a in state.accounts.values()) == state.total_deposits - state.total_withdrawals

    @invariant()
    def no_fill_beyond_order_size(self):
        for order_id, filled in self.filled.items():
            assert filled <= self.sizes[order_id]
        for order in self.ex.state.orders.values():
            assert 0 < order.remaining <= order.size
            assert order.filled == self.filled.get(order.order_id, 0)

    @invariant()
    def account_aggregates_match_orders(self):
        state = self.ex.state
        for account in state.accounts.values():
            for instrument, agg in account.open.items():
                orders = [o for o in account.orders.values() if o.instrument == instrument]
                scale = 10**state.instruments[instrument].size_decimals
                assert agg.count == len(orders) > 0
                assert agg.bid_size == sum(o.remaining for o in orders if o.side > 0)
                assert agg.ask_notional == sum(o.remaining * o.price // scale for o in orders if o.side < 0)
            assert all(state.orders[i] is o for i, o in account.orders.items())

    @invariant()
    def advanced_orders_consistent(self):
        check_advanced_orders(self.ex.state)

    def teardown(self):
        state = self.ex.state
        assert state_hash(decode_snapshot(encode_snapshot(state))) == state_hash(state)
        assert self.ex.replay_hash() == state_hash(state)


ExchangeMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=60, deadline=None)
TestExchangeMachine = ExchangeMachine.TestCase
