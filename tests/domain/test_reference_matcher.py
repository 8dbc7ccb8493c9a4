"""Property: random command streams give identical fills and books on the real matcher
(through apply(), with margin never binding) and on the slow reference matcher."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from clearway.domain.events import Rejected, Trade
from clearway.domain.orders import TimeInForce
from reference_matcher import ReferenceMatcher
from support import Exchange, TICK, usd

ACCOUNTS = (2, 3, 4)
BASE = usd(25_000)
TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}

place = st.tuples(st.just("place"), st.sampled_from(ACCOUNTS), st.sampled_from((1, -1)),
                  st.integers(-6, 6), st.integers(1, 8), st.sampled_from(("GTC", "GTC", "GTC", "IOC", "FOK")),
                  st.booleans())
cancel = st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(1, 60))
amend = st.tuples(st.just("amend"), st.sampled_from(ACCOUNTS), st.integers(1, 60), st.integers(1, 10),
                  st.integers(-6, 6))
commands = st.lists(st.one_of(place, place, place, cancel, amend), max_size=120)


def _setup() -> Exchange:
    ex = Exchange()
    for owner in (0xA1, 0xB2, 0xC3):
        ex.deposit(owner, usd(10**12))
    ex.marks(BASE)
    return ex


@settings(max_examples=150, deadline=None)
@given(commands)
def test_real_matcher_agrees_with_reference_matcher(stream):
    ex = _setup()
    ref = ReferenceMatcher()
    fills = []
    for command in stream:
        if command[0] == "place":
            _, account, side, offset, size, tif, post_only = command
            price = BASE + offset * TICK
            events = ex.place(account, side, size, price, tif=TIFS[tif], post_only=post_only)
            accepted = ref.place(account, side, price, size, tif, post_only)
        elif command[0] == "cancel":
            _, account, order_id = command
            events = ex.cancel(account, order_id=order_id)
            accepted = ref.cancel(account, order_id)
        else:
            _, account, order_id, size, offset = command
            events = ex.amend(account, order_id, size, BASE + offset * TICK)
            accepted = ref.amend(account, order_id, size, BASE + offset * TICK)
        assert accepted == (not events or not isinstance(events[0], Rejected)), (command, events)
        fills += [(e.maker_order_id, e.taker_order_id, e.price, e.size) for e in events if isinstance(e, Trade)]
    assert fills == ref.fills
    book = ex.state.books[0]
    ours = [(o.side, o.price, o.order_id, o.remaining) for o in book.iter_orders()]
    assert ours == ref.book()
