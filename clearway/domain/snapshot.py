"""Snapshots: the whole exchange state as bytes, and back.

Used by the sequencer (recovery = snapshot + journal tail) and by verifiers. The format is
versioned MessagePack of plain lists; resting orders are stored per book in priority order
(bids best-first, then asks, FIFO within a level), so re-adding them rebuilds every queue
exactly. The restored state has the same ``state_hash``.

Version 2 appends the market data (market.UnderlyingMarket per underlying) and the stable
price; version 1 snapshots (without them) still load. Derived data (option marks are in
``marks``; the risk-array cache) is rebuilt, never stored twice.
"""

from __future__ import annotations

import msgspec

from clearway.domain.accounts import Account, MarginMode, Position
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec
from clearway.domain.market import UnderlyingMarket
from clearway.domain.orders import Order

SNAPSHOT_VERSION = 2
_READABLE = (1, 2)


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can read."""


def encode_snapshot(state) -> bytes:
    """Serialise ``state`` (an ExchangeState). Pure function of the state."""
    accounts = []
    for account_id in sorted(state.accounts):
        a = state.accounts[account_id]
        accounts.append([a.account_id, a.owner, a.cash, int(a.margin_mode),
                         [[i, *a.positions[i].canonical()] for i in sorted(a.positions)]])
    books = []
    for instrument_id in sorted(state.books):
        books.append([instrument_id, [list(o.canonical()) for o in state.books[instrument_id].iter_orders()]])
    body = [
        SNAPSHOT_VERSION, state.genesis.encode(), state.last_seq, state.last_ts,
        [state.instruments[i] for i in sorted(state.instruments)],
        sorted(state.marks.items()), sorted(state.index.items()),
        accounts, books, state.next_order_id, state.next_trade_id, state.last_deposit_id,
        state.total_deposits, state.total_withdrawals,
        [state.markets[u] for u in sorted(state.markets)], state.stable_price,
    ]
    return msgspec.msgpack.encode(body)


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
        (version, genesis_bytes, last_seq, last_ts, instruments, marks, index, accounts, books,
         next_order_id, next_trade_id, last_deposit_id, total_deposits, total_withdrawals,
         markets, stable_price) = body
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
            for (order_id, account_id, instrument, side, price, size, remaining, tif, post_only,
                 reduce_only, client_order_id) in orders:
                order = Order(order_id, account_id, instrument, side, price, size, tif, post_only,
                              reduce_only, client_order_id)
                order.remaining = remaining
                book.add(order)
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
        state.last_seq, state.last_ts = last_seq, last_ts
        state.next_order_id, state.next_trade_id = next_order_id, next_trade_id
        state.last_deposit_id = last_deposit_id
        state.total_deposits, state.total_withdrawals = total_deposits, total_withdrawals
        return state
    except SnapshotError:
        raise
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc}") from exc
