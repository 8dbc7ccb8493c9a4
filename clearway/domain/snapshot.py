"""Snapshots: the whole exchange state as bytes, and back.

Used by the sequencer (recovery = snapshot + journal tail) and by verifiers. The format is
versioned MessagePack of plain lists; resting orders are stored per book in priority order
(bids best-first, then asks, FIFO within a level), so re-adding them rebuilds every queue
exactly. The restored state has the same ``state_hash``.

Version 2 appends the market data (market.UnderlyingMarket per underlying) and the stable
price; version 3 the market lifecycle (oracle, halts, perp-mark EMAs, the clock, funding
indices and samples, index samples, delisted options, served forced withdrawals, the
liquidation window: state.py); version 4 the advanced order types (issue 9): last trade
prices, waiting conditional orders, running TWAP parents, and — inside the order rows of
the books — the iceberg and good-til-time fields of the orders that have them (14 fields
instead of 11: ``Order.canonical``). Versions 1, 2 and 3 still load (no advanced orders;
versions 1 and 2 with an empty lifecycle and the clock restarted by the next command).
Derived data (option marks are in ``marks``; the risk-array cache; trigger lists and the
good-til-time heap) is rebuilt, never stored twice.
"""

from __future__ import annotations

import msgspec

from clearway.domain.accounts import Account, MarginMode, Position
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec
from clearway.domain.market import UnderlyingMarket
from clearway.domain.orders import AdvancedOrder, Order

SNAPSHOT_VERSION = 4
_READABLE = (1, 2, 3, 4)


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can read."""


def encode_snapshot(state, book_rows: dict | None = None) -> bytes:
    """Serialise ``state`` (an ExchangeState). Pure function of the state. ``book_rows``:
    the state's ``book_rows()`` if the caller has it already (the same bytes: MessagePack
    writes a tuple and a list alike)."""
    accounts = []
    for account_id in sorted(state.accounts):
        a = state.accounts[account_id]
        accounts.append([a.account_id, a.owner, a.cash, int(a.margin_mode),
                         [[i, *a.positions[i].canonical()] for i in sorted(a.positions)]])
    if book_rows is None:
        book_rows = state.book_rows()
    books = [[instrument_id, book_rows[instrument_id]] for instrument_id in sorted(state.books)]
    body = [
        SNAPSHOT_VERSION, state.genesis.encode(), state.last_seq, state.last_ts,
        [state.instruments[i] for i in sorted(state.instruments)],
        sorted(state.marks.items()), sorted(state.index.items()),
        accounts, books, state.next_order_id, state.next_trade_id, state.last_deposit_id,
        state.total_deposits, state.total_withdrawals,
        [state.markets[u] for u in sorted(state.markets)], state.stable_price,
        _lifecycle(state),
        _advanced(state),
    ]
    return msgspec.msgpack.encode(body)


def _advanced(state) -> list:
    """The version-4 part: last trade prices, conditional orders, TWAP parents (the same
    rows as the end of ``canonical``)."""
    return [
        sorted(state.last_trade.items()),
        [list(state.conditionals[i].canonical()) for i in sorted(state.conditionals)],
        [list(state.twaps[i].canonical()) for i in sorted(state.twaps)],
    ]


def _restore_advanced(state, part: list) -> None:
    from clearway.domain.conditional import Conditional, register
    from clearway.domain.twap import Twap

    last_trade, conditionals, twaps = part
    state.last_trade.update({int(i): p for i, p in last_trade})
    for row in conditionals:
        register(state, Conditional(*row))
    for row in twaps:
        twap = Twap(*row[:12], filled=row[12], done=row[13])
        state.twaps[twap.order_id] = twap
        if twap.client_order_id:
            state.accounts[twap.account].client_ids[twap.client_order_id] = twap.order_id


def _lifecycle(state) -> list:
    """The version-3 part: the same fields, in the same order, as the end of ``canonical``."""
    return [
        sorted([u, list(v)] for u, v in state.oracle_last.items()), sorted(state.halted),
        sorted([i, list(v)] for i, v in state.mark_ema.items()), state.next_minute, state.next_hour,
        sorted(state.funding_index.items()), sorted([i, list(v)] for i, v in state.premium_samples.items()),
        sorted([u, [list(p) for p in v]] for u, v in state.index_samples.items()), sorted(state.delisted),
        sorted(state.forced_served), state.liquidation_second, sorted(state.liquidation_used.items()),
    ]


def _restore_lifecycle(state, part: list) -> None:
    (oracle_last, halted, mark_ema, next_minute, next_hour, funding_index, premium_samples, index_samples,
     delisted, forced_served, liquidation_second, liquidation_used) = part
    state.oracle_last.update({u: (v[0], v[1]) for u, v in oracle_last})
    state.halted.update(halted)
    state.mark_ema.update({int(i): list(v) for i, v in mark_ema})
    state.next_minute, state.next_hour = next_minute, next_hour
    state.funding_index.update({int(i): v for i, v in funding_index})  # in place: margin shares the dict
    state.premium_samples.update({int(i): list(v) for i, v in premium_samples})
    state.index_samples.clear()
    state.index_samples.update({u: [(p[0], p[1]) for p in v] for u, v in index_samples})
    state.delisted.update(delisted)
    state.forced_served.update(forced_served)
    state.liquidation_second = liquidation_second
    state.liquidation_used.update({int(i): v for i, v in liquidation_used})


def _reschedule(state) -> None:
    """Derived schedule of a restored state (never stored): next expiry and next timer."""
    from clearway.domain.clock import reschedule
    from clearway.domain.expiry import next_expiry

    from heapq import heapify

    state.gtt[:] = [(o.expire_at, o.order_id) for o in state.orders.values() if o.expire_at]
    state.gtt += [(c.expire_at, c.order_id) for c in state.conditionals.values() if c.expire_at]
    heapify(state.gtt)
    state.next_expiry = next_expiry(state)
    if state.next_minute == 0:
        state.next_timer = 0  # the clock starts at the next command
    else:
        reschedule(state, state.last_ts)


def decode_snapshot(data: bytes):
    """Rebuild an ExchangeState from ``encode_snapshot`` bytes.

    Raises SnapshotError on anything malformed (wrong version, truncated, bad types).
    """
    from clearway.domain.state import ExchangeState

    try:
        body = msgspec.msgpack.decode(data)
        if not isinstance(body, list) or not body or body[0] not in _READABLE:
            version = body[0] if isinstance(body, list) and body else None
            raise SnapshotError(f"snapshot version {version} is not one of {_READABLE}")
        if body[0] == 1:
            body = [*body, [], 0]
        if body[0] <= 2:
            body = [*body, None]
        if body[0] <= 3:
            body = [*body, None]
        (version, genesis_bytes, last_seq, last_ts, instruments, marks, index, accounts, books,
         next_order_id, next_trade_id, last_deposit_id, total_deposits, total_withdrawals,
         markets, stable_price, lifecycle, advanced) = body
        genesis = GenesisConfig.decode(genesis_bytes)
        state = ExchangeState(genesis)
        for raw in instruments[len(genesis.instruments):]:
            state.list_instrument(msgspec.convert(raw, InstrumentSpec))
        state.accounts.clear()
        state.owners.clear()
        for account_id, owner, cash, mode, positions in accounts:
            account = Account(account_id, owner)
            account.cash = cash
            account.margin_mode = MarginMode(mode)
            for instrument, size, entry, funding in positions:
                account.positions[instrument] = Position(size, entry, funding)
            state.accounts[account_id] = account
            state.owners[owner] = account_id
        for instrument_id, orders in books:
            book = state.books[instrument_id]
            scale = 10**state.instruments[instrument_id].size_decimals
            for row in orders:
                (order_id, account_id, instrument, side, price, size, remaining, tif, post_only,
                 reduce_only, client_order_id) = row[:11]
                if len(row) > 11:
                    display, shown, expire_at = row[11:14]
                    order = AdvancedOrder(order_id, account_id, instrument, side, price, size, tif, post_only,
                                          reduce_only, client_order_id, display=display, expire_at=expire_at)
                else:
                    order = Order(order_id, account_id, instrument, side, price, size, tif, post_only,
                                  reduce_only, client_order_id)
                order.remaining = remaining
                book.add(order)
                if order.display:
                    book.restore_shown(order, shown)
                state.accounts[account_id].add_order(order, scale)
                state.orders[order_id] = order
        for raw in markets:
            market = msgspec.convert(raw, UnderlyingMarket)
            state.markets[market.underlying] = market
        if stable_price:
            state.margin.set_stable_price(stable_price)
        state.marks.clear()  # listing may have derived option marks; the snapshot's are the truth
        state.marks.update({int(k): v for k, v in marks})
        state.index.update(dict(index))
        if lifecycle is not None:
            _restore_lifecycle(state, lifecycle)
        if advanced is not None:
            _restore_advanced(state, advanced)
        state.last_seq, state.last_ts = last_seq, last_ts
        _reschedule(state)
        state.next_order_id, state.next_trade_id = next_order_id, next_trade_id
        state.last_deposit_id = last_deposit_id
        state.total_deposits, state.total_withdrawals = total_deposits, total_withdrawals
        return state
    except SnapshotError:
        raise
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc}") from exc
