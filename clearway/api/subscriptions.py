"""Subscriptions over WebSocket: channels, their first message, and the fan-out of every
change the read model reports.

Channels (Deribit's names, https://docs.deribit.com "Subscriptions"); ``interval`` is
``raw``, ``100ms`` or ``agg2``, and every interval is served at the read model's pace
(one notification per applied chunk of commands, never slower than 100 ms):

- ``book.{instrument}.{interval}``: first a ``snapshot`` of the whole book, then
  ``change`` notifications ``[["new"|"change"|"delete", price, amount], …]`` per side,
  each with ``change_id`` and ``prev_change_id`` (the previous notification's id), so a
  client can apply them in order and detect a gap;
- ``trades.{instrument}.{interval}``, ``trades.{kind}.{currency}.{interval}``: new trades;
- ``ticker.{instrument}.{interval}``, ``quote.{instrument}``;
- private: ``user.orders.{instrument}.{interval}``, ``user.orders.{kind}.{currency}.
  {interval}``, ``user.trades.…`` likewise, ``user.portfolio.{currency}``.

A connection's outgoing messages go through its bounded queue (server.py): a client
that does not read is disconnected, never waited for.
"""

from __future__ import annotations

import asyncio
import logging

from clearway.api import accounts as acc
from clearway.api.errors import invalid_params, unauthorized
from clearway.api.names import Instrument, usdc

log = logging.getLogger("clearway.api")

INTERVALS = ("raw", "100ms", "agg2")
MAX_CHANNELS_PER_CONNECTION = 1_000


class Hub:
    """Channel → subscribed connections, and the notifications of each change."""

    def __init__(self, api) -> None:
        self.api = api
        self.channels: dict[str, set] = {}            # public channel → connections
        self.user: dict[str, dict[str, set]] = {}     # owner → channel → connections
        self._portfolio_pending: set[int] = set()

    # -- subscribe ---------------------------------------------------------------------
    def subscribe(self, ctx, channels: list, private: bool) -> list[str]:
        conn = ctx.conn
        if conn is None:
            raise invalid_params("channels", "subscriptions need a WebSocket connection")
        done = []
        for channel in channels:
            if not isinstance(channel, str) or len(channel) > 128:
                raise invalid_params("channels", "channel names are strings")
            if channel in conn.channels:
                done.append(channel)
                continue
            if len(conn.channels) >= MAX_CHANNELS_PER_CONNECTION:
                raise invalid_params("channels", "too many subscriptions on this connection")
            parts = channel.split(".")
            if parts[0] == "user":
                if not private or ctx.key is None:
                    raise unauthorized(f"{channel} needs private/subscribe on an authenticated connection")
                self._check_user(parts, channel)
                owner = ctx.key.owner
                self.user.setdefault(owner, {}).setdefault(channel, set()).add(conn)
                conn.channels[channel] = owner
            else:
                first = self._check_public(parts, channel)
                self.channels.setdefault(channel, set()).add(conn)
                conn.channels[channel] = None
                if first is not None:
                    conn.send(first)
            done.append(channel)
        return done

    def _check_public(self, parts: list[str], channel: str):
        """Validate a public channel; return its first notification (book snapshot)."""
        model = self.api.model
        kind = parts[0]
        if kind == "book" and len(parts) == 3 and parts[2] in INTERVALS:
            inst = model.instrument(parts[1])
            if inst is None:
                raise invalid_params("channels", f"unknown instrument in {channel}")
            return self._book_message(channel, inst, snapshot=True)
        if kind in ("ticker",) and len(parts) == 3 and parts[2] in INTERVALS or kind == "quote" and len(parts) == 2:
            if model.instrument(parts[1]) is None:
                raise invalid_params("channels", f"unknown instrument in {channel}")
            return None
        if kind == "trades" and len(parts) == 3 and parts[2] in INTERVALS:
            if model.instrument(parts[1]) is None:
                raise invalid_params("channels", f"unknown instrument in {channel}")
            return None
        if kind == "trades" and len(parts) == 4 and parts[3] in INTERVALS:
            return None
        raise invalid_params("channels", f"unsupported channel {channel}")

    def _check_user(self, parts: list[str], channel: str) -> None:
        if parts[1] in ("orders", "trades") and (
                (len(parts) == 4 and parts[3] in INTERVALS and self.api.model.instrument(parts[2]) is not None)
                or (len(parts) == 5 and parts[4] in INTERVALS)):
            return
        if parts[1] == "portfolio" and len(parts) == 3:
            return
        raise invalid_params("channels", f"unsupported channel {channel}")

    def unsubscribe(self, ctx, channels: list) -> list[str]:
        conn = ctx.conn
        if conn is None:
            return []
        gone = []
        for channel in channels:
            if isinstance(channel, str) and channel in conn.channels:
                self._remove(conn, channel)
                gone.append(channel)
        return gone

    def unsubscribe_all(self, ctx) -> None:
        if ctx.conn is not None:
            self.drop(ctx.conn)

    def _remove(self, conn, channel: str) -> None:
        owner = conn.channels.pop(channel, None)
        if owner is None:
            members = self.channels.get(channel)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self.channels[channel]
        else:
            per = self.user.get(owner, {})
            members = per.get(channel)
            if members is not None:
                members.discard(conn)
                if not members:
                    del per[channel]
            if not per:
                self.user.pop(owner, None)

    def drop(self, conn) -> None:
        for channel in list(conn.channels):
            self._remove(conn, channel)

    def drop_key(self, key) -> None:
        """A revoked key: its connections lose their private subscriptions and session."""
        for per in list(self.user.values()):
            for members in list(per.values()):
                for conn in list(members):
                    if conn.key is key:
                        for channel, owner in list(conn.channels.items()):
                            if owner is not None:
                                self._remove(conn, channel)
                        conn.key = None
                        conn.ctx.key = None

    def close_all(self) -> None:
        self.channels.clear()
        self.user.clear()

    # -- notifications -----------------------------------------------------------------
    def _book_message(self, channel: str, inst: Instrument, snapshot: bool, changes=None) -> dict:
        model = self.api.model
        book = model.books[inst.instrument_id]
        data = {"type": "snapshot" if snapshot else "change", "timestamp": model.ts,
                "instrument_name": inst.name, "change_id": book.change_id}
        if snapshot:
            data["bids"] = [["new", usdc(p), inst.amount(q)] for p, q in book.levels(1)]
            data["asks"] = [["new", usdc(p), inst.amount(q)] for p, q in book.levels(-1)]
        else:
            data["prev_change_id"] = book.change_id - 1
            data["bids"], data["asks"] = changes
        return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}

    def on_changes(self, changes) -> None:
        """Called by the read model after each applied chunk (on the loop)."""
        model = self.api.model
        channels = self.channels
        # books: one change id per instrument per chunk
        for instrument, touched in changes.levels.items():
            book = model.books[instrument]
            inst = model.instruments.get(instrument) or model.delisted[instrument]
            bids, asks = [], []
            for (side, price), before in touched.items():
                after = book.side(side).get(price, 0)
                if after == before:
                    continue
                action = "new" if before == 0 else ("delete" if after == 0 else "change")
                (bids if side > 0 else asks).append([action, usdc(price), inst.amount(after)])
            if not bids and not asks:
                continue
            bids.sort(key=lambda e: -e[1])
            asks.sort(key=lambda e: e[1])
            book.change_id += 1
            for interval in INTERVALS:
                channel = f"book.{inst.name}.{interval}"
                members = channels.get(channel)
                if members:
                    self._send(members, self._book_message(channel, inst, False, (bids, asks)))
        if changes.trades and channels:
            self._public_trades(changes.trades)
        if changes.tickers and channels:
            from clearway.api.methods import ticker_json

            for instrument in changes.tickers:
                inst = model.instruments.get(instrument)
                if inst is None:
                    continue
                wanted = [c for c in (f"ticker.{inst.name}.raw", f"ticker.{inst.name}.100ms",
                                      f"ticker.{inst.name}.agg2", f"quote.{inst.name}") if c in channels]
                if not wanted:
                    continue
                data = ticker_json(self.api, inst)
                for channel in wanted:
                    if channel.startswith("quote."):
                        payload = {k: data[k] for k in ("timestamp", "instrument_name", "best_bid_price",
                                                        "best_bid_amount", "best_ask_price", "best_ask_amount")}
                    else:
                        payload = data
                    self._send(channels[channel], _note(channel, payload))
        if self.user:
            self._user(changes)

    def _public_trades(self, trades) -> None:
        channels = self.channels
        grouped: dict[str, list] = {}
        for trade in trades:
            inst = trade.instrument
            for interval in INTERVALS:
                for channel in (f"trades.{inst.name}.{interval}",
                                *(f"trades.{k}.{c}.{interval}" for k in (inst.kind, "any")
                                  for c in (inst.underlying, "USDC", "any"))):
                    if channel in channels:
                        grouped.setdefault(channel, []).append(trade.public_json())
        for channel, data in grouped.items():
            self._send(channels[channel], _note(channel, data))

    def _user(self, changes) -> None:
        model = self.api.model
        owner_of = model.account_owner
        for account, orders in changes.orders.items():
            per = self.user.get(owner_of.get(account))
            if not per:
                continue
            for channel, members in per.items():
                parts = channel.split(".")
                if parts[1] != "orders":
                    continue
                picked = [o.to_json() for o in orders.values() if _matches(parts, o.instrument)]
                if not picked:
                    continue
                if parts[-1] == "raw":
                    for order in picked:
                        self._send(members, _note(channel, order))
                else:
                    self._send(members, _note(channel, picked))
        if changes.trades:
            by_account: dict[int, list] = {}
            for trade in changes.trades:
                by_account.setdefault(trade.maker_account, []).append(trade)
                if trade.taker_account != trade.maker_account:
                    by_account.setdefault(trade.taker_account, []).append(trade)
            for account, trades in by_account.items():
                per = self.user.get(owner_of.get(account))
                if not per:
                    continue
                for channel, members in per.items():
                    parts = channel.split(".")
                    if parts[1] != "trades":
                        continue
                    picked = [t.user_json(account) for t in trades if _matches(parts, t.instrument)]
                    if picked:
                        self._send(members, _note(channel, picked))
        for account in changes.accounts:
            owner = owner_of.get(account)
            per = self.user.get(owner)
            if per and any(c.startswith("user.portfolio.") for c in per) and account not in self._portfolio_pending:
                self._portfolio_pending.add(account)
                asyncio.get_running_loop().create_task(self._portfolio(account, owner))

    async def _portfolio(self, account: int, owner: str) -> None:
        try:
            api = self.api
            future = api.node.query(lambda state: acc.account_summary(state, account, owner))
            summary = await asyncio.wrap_future(future)
        except Exception:
            return
        finally:
            self._portfolio_pending.discard(account)
        for channel, members in self.user.get(owner, {}).items():
            if channel.startswith("user.portfolio.") and channel.split(".")[2].upper() in ("USDC", "ANY"):
                self._send(members, _note(channel, summary))

    @staticmethod
    def _send(members, message: dict) -> None:
        from clearway.api.rpc import encode

        data = encode(message)
        for conn in tuple(members):
            conn.send_bytes(data)


def _note(channel: str, data) -> dict:
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}


def _matches(parts: list[str], inst: Instrument) -> bool:
    """Does a user.orders / user.trades channel cover ``inst``?"""
    if len(parts) == 4:
        return parts[2] == inst.name
    kind, currency = parts[2], parts[3].upper()
    return kind in ("any", inst.kind) and currency in ("ANY", "USDC", inst.underlying)
