"""A slow, obviously-correct matcher used to cross-check the real one.

Plain lists, a full sort of the opposite side for every step, no incremental structures.
Semantics (exchange-rules.md "Orders and matching"): price-time priority; trades at the
maker price; GTC rests, IOC cancels its remainder, FOK fills completely or is rejected;
post-only that would cross is rejected; self-trade prevention removes the resting order;
amend: a size decrease at the same price keeps priority, anything else re-enters as a
taker with new priority. Order ids count accepted orders from 1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RefOrder:
    order_id: int
    account: int
    side: int
    price: int
    size: int
    remaining: int
    stamp: int
    post_only: bool


class ReferenceMatcher:
    def __init__(self) -> None:
        self.resting: list[RefOrder] = []
        self.next_id = 1
        self.clock = 0
        self.fills: list[tuple[int, int, int, int]] = []  # (maker id, taker id, price, size)

    def _crossing(self, side: int, price: int) -> list[RefOrder]:
        opposite = [o for o in self.resting if o.side == -side
                    and (o.price <= price if side == 1 else o.price >= price)]
        return sorted(opposite, key=lambda o: (o.price * side, o.stamp))  # best price first, then oldest

    def _take(self, order_id: int, account: int, side: int, price: int, size: int) -> int:
        remaining = size
        while remaining:
            candidates = self._crossing(side, price)
            if not candidates:
                break
            maker = candidates[0]
            if maker.account == account:
                self.resting.remove(maker)
                continue
            lots = min(remaining, maker.remaining)
            maker.remaining -= lots
            remaining -= lots
            self.fills.append((maker.order_id, order_id, maker.price, lots))
            if maker.remaining == 0:
                self.resting.remove(maker)
        return remaining

    def place(self, account: int, side: int, price: int, size: int, tif: str, post_only: bool) -> bool:
        crossing = self._crossing(side, price)
        if post_only and crossing:
            return False
        if tif == "FOK" and sum(o.remaining for o in crossing if o.account != account) < size:
            return False
        order_id = self.next_id
        self.next_id += 1
        remaining = self._take(order_id, account, side, price, size)
        if remaining and tif == "GTC":
            self.clock += 1
            self.resting.append(RefOrder(order_id, account, side, price, size, remaining, self.clock, post_only))
        return True

    def cancel(self, account: int, order_id: int) -> bool:
        for o in self.resting:
            if o.order_id == order_id and o.account == account:
                self.resting.remove(o)
                return True
        return False

    def amend(self, account: int, order_id: int, size: int, price: int) -> bool:
        found = [o for o in self.resting if o.order_id == order_id and o.account == account]
        if not found:
            return False
        o = found[0]
        filled = o.size - o.remaining
        if size <= filled or (size == o.size and price == o.price):
            return False
        if price == o.price and size < o.size:
            o.remaining -= o.size - size
            o.size = size
            return True
        if o.post_only and self._crossing(o.side, price):
            return False
        self.resting.remove(o)
        remaining = self._take(o.order_id, account, o.side, price, size - filled)
        if remaining:
            self.clock += 1
            o.price, o.size, o.remaining, o.stamp = price, size, remaining, self.clock
            self.resting.append(o)
        return True

    def book(self) -> list[tuple[int, int, int, int]]:
        """Resting orders in priority order per side: (side, price, order id, remaining)."""
        bids = sorted((o for o in self.resting if o.side == 1), key=lambda o: (-o.price, o.stamp))
        asks = sorted((o for o in self.resting if o.side == -1), key=lambda o: (o.price, o.stamp))
        return [(o.side, o.price, o.order_id, o.remaining) for o in bids + asks]
