"""Invariants of the advanced order types (issue 9), shared by the stateful tests."""

from __future__ import annotations

from clearway.domain.conditional import source_price


def check_advanced_orders(state) -> None:
    """After any command:

    - no waiting conditional's trigger is already reached (it would have fired), and each
      is indexed exactly once in its instrument's trigger list and its account's map;
    - a waiting reduce-only conditional or TWAP still has a position it reduces;
    - icebergs show 0 < shown ≤ min(display, remaining);
    - no open order or conditional is past its good-til-time; no TWAP has a due interval
      left, and its fills are within its size;
    - client order ids map exactly the open orders, conditionals and TWAPs that carry one.
    """
    ts = state.last_ts
    indexed = 0
    for instrument, book in state.triggers.items():
        for slot, keys in enumerate(book.lists):
            assert keys == sorted(keys) and len(set(keys)) == len(keys)
            for key in keys:
                cond = state.conditionals[key[1]]
                assert cond.instrument == instrument and cond.slot() == slot and cond.key() == key
            indexed += len(keys)
        assert not book.empty()
    assert indexed == len(state.conditionals)
    assert sum(len(m) for m in state.account_conditionals.values()) == len(state.conditionals)
    for order_id, cond in state.conditionals.items():
        assert state.account_conditionals[cond.account][order_id] is cond
        price = source_price(state, cond.instrument, cond.trigger)
        if price is not None:
            assert (cond.trigger_price > price) if cond.rising else (cond.trigger_price < price), (cond.canonical(),
                                                                                                 price)
        assert not cond.expire_at or cond.expire_at > ts
        if cond.reduce_only:
            position = state.accounts[cond.account].position_size(cond.instrument)
            assert position != 0 and (position > 0) != (cond.side > 0)
    for order in state.orders.values():
        assert not order.expire_at or order.expire_at > ts
        if order.display:
            assert 0 < order.shown <= min(order.display, order.remaining)
    for twap in state.twaps.values():
        assert 0 <= twap.filled < twap.size and twap.done < twap.intervals and twap.next_ts > ts
        if twap.reduce_only:
            position = state.accounts[twap.account].position_size(twap.instrument)
            assert position != 0 and (position > 0) != (twap.side > 0)
    for account in state.accounts.values():
        expected = {o.client_order_id: o.order_id for o in account.orders.values() if o.client_order_id}
        for cond in state.account_conditionals.get(account.account_id, {}).values():
            if cond.client_order_id:
                expected[cond.client_order_id] = cond.order_id
        for twap in state.twaps.values():
            if twap.account == account.account_id and twap.client_order_id:
                expected[twap.client_order_id] = twap.order_id
        assert account.client_ids == expected
