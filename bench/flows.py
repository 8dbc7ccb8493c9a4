"""Deterministic order flows for the matching benchmark, and a reference matcher.

A flow is a list of plain tuples, replayed identically through Clearway's
engine and through the peer engines (``bench/peers.py``):

    ("add", order_id, side, price, size, tif)
        order_id  int, strictly increasing and unique over prefill + ops
        side      +1 buy, -1 sell
        price     int, ticks, > 0
        size      int, lots, 1..100
        tif       "GTC" | "IOC"
    ("cancel", order_id)
        order_id  id of an earlier add. Almost always an order that is still
                  resting at that point; rarely (about 0.5 % of cancels) one
                  that is already gone (fully filled, cancelled or an IOC).
                  A cancel of an unknown / gone id must be a no-op.

``make_flow(n, seed, deep=False)`` returns a :class:`Flow` whose ``prefill``
builds the resting book (run untimed) and whose ``ops`` are the ``n`` timed
operations: about 60 % GTC adds, 10 % IOC adds and 30 % cancels.

``make_advanced_flow(n, seed)`` (issue 9; Clearway only, the peers have no such
orders) is the normal flow with 10 % of the operations replaced by conditional
orders and 5 % by iceberg orders, two more tuple kinds:

    ("stop", order_id, side, kind, trigger, price, size)
        kind      "stop" | "take_profit"; trigger on the last trade price (ticks)
        price     limit price in ticks, 0 = a market order when triggered
        Stops are 1-8 ticks beyond the touch and the last trade (buy stops above,
        sell stops below; take-profits the other way), so the fair price's random
        walk fires many of them.
    ("iceberg", order_id, side, price, size, display)
        a passive GTC order of 40-200 lots showing 1/4-1/10 of it.

The reference book of the generator holds icebergs as plain orders (so cancels
can aim at them) and knows nothing of conditionals: this flow has no reference
result, only a throughput and its counts.

The generator replays every operation through the reference book
(:class:`RefBook`) while it generates, so it knows exactly which orders are
resting; that is how cancels target live orders and how passive orders are
kept passive (they never cross) while crossing orders always cross.

Prices: a "fair" price starts at 100,000 ticks and random-walks by one tick
with probability 1/20 per operation. Passive orders sit a few ticks from fair
on their own side (clamped so that they never cross the opposite touch);
crossing orders (12 % of GTC adds, 75 % of IOC adds) are priced 0-2 ticks
through the opposite touch, so ~21 % of all adds trade. Passive sizes are
skewed small (1-100, median ~10, mean ~16), aggressive sizes uniform 1..hi:
hi = 100 while the book holds at least its target number of resting orders,
smaller when it is thinner. That feedback is what keeps the book size stable
under a fixed 60/10/30 mix (otherwise the book drains or grows without bound).

Normal flow: prefill of 1,000 passive orders within ~20 ticks of fair (~40
levels); during the ops the book stays at ~900-1,250 resting orders on ~40-80
levels.
Deep flow: prefill of 24,000 passive orders over ~2,500 price levels
(exponential distance from fair, mean 300 ticks, capped at 3,000 ticks); in the
ops half of the passive adds use that same deep distribution, so the book
stays at ~23,500-26,000 resting orders on ~2,500 levels (the op mix is the
same as the normal flow).
Prefill never trades.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Flow", "RefBook", "make_advanced_flow", "make_flow", "reference_match", "flow_stats"]

BUY = 1
SELL = -1
GTC = "GTC"
IOC = "IOC"
ADD = "add"
CANCEL = "cancel"
STOP = "stop"
ICEBERG = "iceberg"

START_PRICE = 100_000

NORMAL_PREFILL = 1_000
NORMAL_TARGET = 1_500
DEEP_PREFILL = 24_000
DEEP_TARGET = 34_000
DEEP_SHARE = 0.5
DEEP_MEAN = 300.0
DEEP_CAP = 3_000


@dataclass
class Flow:
    n: int
    seed: int
    deep: bool
    prefill: list[tuple] = field(default_factory=list)
    ops: list[tuple] = field(default_factory=list)


# --------------------------------------------------------------------------
# Reference matcher
# --------------------------------------------------------------------------


class RefBook:
    """A slow, plain price-time priority limit order book.

    * each side: ``dict price -> deque of [order_id, open_qty]`` (FIFO = time
      priority) plus a sorted list of the prices that have orders;
    * an incoming order matches the best opposite price while it crosses,
      oldest order first, at the resting (maker) order's price;
    * a GTC remainder rests at the back of its level, an IOC remainder is
      discarded;
    * a cancel of an unknown, filled or already cancelled id is ignored.

    No self-match prevention, no minimum size, integer prices.
    """

    def __init__(self) -> None:
        self.levels = {BUY: {}, SELL: {}}  # side -> {price: deque([[oid, qty], ...])}
        self.prices = {BUY: [], SELL: []}  # side -> sorted ascending list of prices
        self.where: dict[int, tuple[int, int]] = {}  # resting oid -> (side, price)
        self.fills: list | None = None  # if a list: every fill appended as (qty, price)
        self.last: int | None = None  # price of the last fill

    # -- queries ----------------------------------------------------------
    def best(self, side: int) -> int | None:
        """Best price on ``side`` (highest bid / lowest ask) or None."""
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def resting(self) -> int:
        return len(self.where)

    def level_count(self) -> int:
        return len(self.prices[BUY]) + len(self.prices[SELL])

    # -- operations ---------------------------------------------------------
    def add(self, oid: int, side: int, price: int, size: int, tif: str):
        """Process one add. Returns ``(trades, volume, gone_maker_ids)``."""
        trades = 0
        volume = 0
        gone: list[int] = []
        other = -side
        levels = self.levels[other]
        prices = self.prices[other]
        while size > 0 and prices:
            best = prices[-1] if other == BUY else prices[0]
            crosses = price >= best if side == BUY else price <= best
            if not crosses:
                break
            queue = levels[best]
            while size > 0 and queue:
                maker = queue[0]
                qty = maker[1] if maker[1] < size else size
                maker[1] -= qty
                size -= qty
                trades += 1
                volume += qty  # trades at the maker's price (`best`)
                self.last = best
                if self.fills is not None:
                    self.fills.append((qty, best))
                if maker[1] == 0:
                    queue.popleft()
                    del self.where[maker[0]]
                    gone.append(maker[0])
            if not queue:
                del levels[best]
                if other == BUY:
                    prices.pop()
                else:
                    prices.pop(0)
        if size > 0 and tif == GTC:
            own = self.levels[side]
            queue = own.get(price)
            if queue is None:
                queue = own[price] = deque()
                bisect.insort(self.prices[side], price)
            queue.append([oid, size])
            self.where[oid] = (side, price)
        return trades, volume, gone

    def cancel(self, oid: int) -> bool:
        """Cancel a resting order; returns False (and does nothing) if unknown."""
        loc = self.where.pop(oid, None)
        if loc is None:
            return False
        side, price = loc
        queue = self.levels[side][price]
        for i, entry in enumerate(queue):
            if entry[0] == oid:
                del queue[i]
                break
        else:  # pragma: no cover - `where` and the levels disagree
            raise AssertionError(f"order {oid} indexed but not in its level")
        if not queue:
            del self.levels[side][price]
            prices = self.prices[side]
            prices.pop(bisect.bisect_left(prices, price))
        return True

    def apply(self, op: tuple):
        """Apply one flow tuple; returns ``(trades, volume)``."""
        if op[0] == ADD:
            t, v, _ = self.add(op[1], op[2], op[3], op[4], op[5])
            return t, v
        self.cancel(op[1])
        return 0, 0


def reference_match(flow: Flow, fills: list | None = None) -> dict:
    """Replay ``flow`` through :class:`RefBook`.

    Returns ``{"trades", "volume", "resting", "prefill_trades", "levels"}``:
    trades (number of maker fills) and volume (lots) over the timed ``ops``
    only, resting = resting order count at the end; ``prefill_trades`` is the
    number of fills during the prefill (0 for flows made by ``make_flow``).
    If ``fills`` is a list, every fill of the timed ops is appended to it as
    ``(qty, maker_price)`` in matching order.
    """
    book = RefBook()
    pre_trades = 0
    for op in flow.prefill:
        pre_trades += book.apply(op)[0]
    book.fills = fills
    trades = 0
    volume = 0
    for op in flow.ops:
        t, v = book.apply(op)
        trades += t
        volume += v
    return {
        "trades": trades,
        "volume": volume,
        "resting": book.resting(),
        "prefill_trades": pre_trades,
        "levels": book.level_count(),
    }


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------


class _Live:
    """Set of resting order ids with O(1) add / remove / uniform choice."""

    __slots__ = ("ids", "pos")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, oid: int) -> None:
        self.pos[oid] = len(self.ids)
        self.ids.append(oid)

    def remove(self, oid: int) -> None:
        i = self.pos.pop(oid)
        last = self.ids.pop()
        if last != oid:
            self.ids[i] = last
            self.pos[last] = i

    def choice(self, rng: random.Random) -> int:
        return self.ids[rng.randrange(len(self.ids))]


class _Gen:
    # operation mix of the timed ops
    P_GTC = 0.60
    P_IOC = 0.10  # cancels: the remaining 0.30
    P_CROSS_GTC = 0.12  # share of GTC adds priced through the opposite touch
    P_CROSS_IOC = 0.75  # share of IOC adds priced through the opposite touch
    P_DEAD_CANCEL = 0.005  # share of cancels aimed at an order already gone
    P_FAIR_STEP = 0.05  # fair price random walk: +-1 tick with this probability

    def __init__(self, seed: int, target: int, deep_share: float, deep_mean: float, deep_cap: int) -> None:
        self.rng = random.Random(seed)
        self.target = target  # resting order count the size controller steers to
        self.deep_share = deep_share  # share of passive adds drawn from the deep distribution
        self.deep_mean = deep_mean
        self.deep_cap = deep_cap
        self.book = RefBook()
        self.live = _Live()
        self.dead: deque[int] = deque(maxlen=512)  # recently gone order ids
        self.fair = START_PRICE
        self.next_id = 1

    # -- sizes / prices -----------------------------------------------------
    def passive_size(self) -> int:
        # skewed small: median ~10, mean ~16, always 1..100
        return min(100, 1 + int(self.rng.expovariate(1 / 15)))

    def aggressive_size(self) -> int:
        # Uniform 1..hi lots, hi = 100 when the book holds its target count of
        # resting orders and smaller when it is thinner: with a fixed 60/10/30
        # add/IOC/cancel mix this feedback is what keeps the book size stable.
        ratio = len(self.live) / self.target
        hi = 100 if ratio >= 1.0 else max(2, int(100 * ratio * ratio))
        return self.rng.randint(1, hi)

    def passive_price(self, side: int, mean_offset: float, cap: int) -> int:
        off = 1 + min(cap, int(self.rng.expovariate(1 / mean_offset)))
        if side == BUY:
            price = self.fair - off
            best_ask = self.book.best(SELL)
            if best_ask is not None and price >= best_ask:
                price = best_ask - 1
        else:
            price = self.fair + off
            best_bid = self.book.best(BUY)
            if best_bid is not None and price <= best_bid:
                price = best_bid + 1
        return max(1, price)

    def crossing_price(self, side: int) -> int:
        through = self.rng.randint(0, 2)
        best = self.book.best(-side)
        if best is None:  # empty opposite side: price it off fair (rests / dies)
            best = self.fair + 1 if side == BUY else self.fair - 1
        return max(1, best + through if side == BUY else best - through)

    # -- emitting -------------------------------------------------------------
    def emit_add(self, out: list, side: int, price: int, size: int, tif: str) -> None:
        oid = self.next_id
        self.next_id += 1
        out.append((ADD, oid, side, price, size, tif))
        _, _, gone = self.book.add(oid, side, price, size, tif)
        for g in gone:
            self.live.remove(g)
            self.dead.append(g)
        if oid in self.book.where:
            self.live.add(oid)
        else:
            self.dead.append(oid)

    def emit_cancel(self, out: list) -> None:
        rng = self.rng
        if self.dead and (not self.live or rng.random() < self.P_DEAD_CANCEL):
            oid = self.dead[rng.randrange(len(self.dead))]
        else:
            oid = self.live.choice(rng)
            self.live.remove(oid)
            self.dead.append(oid)
        out.append((CANCEL, oid))
        self.book.cancel(oid)

    def step_fair(self) -> None:
        rng = self.rng
        if rng.random() < self.P_FAIR_STEP:
            self.fair += 1 if rng.random() < 0.5 else -1

    # -- phases -------------------------------------------------------------
    def prefill(self, count: int, mean_offset: float, cap: int) -> list[tuple]:
        out: list[tuple] = []
        rng = self.rng
        for _ in range(count):
            side = BUY if rng.random() < 0.5 else SELL
            price = self.passive_price(side, mean_offset, cap)
            self.emit_add(out, side, price, self.passive_size(), GTC)
        return out

    def timed(self, n: int) -> list[tuple]:
        out: list[tuple] = []
        for _ in range(n):
            self.step_fair()
            self.plain_op(out, self.rng.random())
        return out

    def timed_advanced(self, n: int, conditional_share: float, iceberg_share: float) -> list[tuple]:
        """``timed`` with ``conditional_share`` of the ops conditional orders and
        ``iceberg_share`` iceberg orders; the rest keeps the plain mix."""
        out: list[tuple] = []
        rng = self.rng
        plain = 1.0 - conditional_share - iceberg_share
        for _ in range(n):
            self.step_fair()
            u = rng.random()
            if u < conditional_share:
                self.emit_stop(out)
            elif u < conditional_share + iceberg_share:
                self.emit_iceberg(out)
            else:
                self.plain_op(out, (u - conditional_share - iceberg_share) / plain)
        return out

    def emit_stop(self, out: list) -> None:
        rng = self.rng
        side = BUY if rng.random() < 0.5 else SELL
        kind = "stop" if rng.random() < 0.7 else "take_profit"
        last = self.book.last if self.book.last is not None else self.fair
        bid, ask = self.book.best(BUY), self.book.best(SELL)
        high = max(last, self.fair, ask if ask is not None else last)
        low = min(last, self.fair, bid if bid is not None else last)
        away = rng.randint(1, 8)
        rising = (kind == "stop") == (side == BUY)
        trigger = high + away if rising else max(1, low - away)
        price = 0 if rng.random() < 0.5 else max(1, trigger + 2 * side)
        oid = self.next_id
        self.next_id += 1
        out.append((STOP, oid, side, kind, trigger, price, rng.randint(1, 30)))

    def emit_iceberg(self, out: list) -> None:
        rng = self.rng
        side = BUY if rng.random() < 0.5 else SELL
        price = self.passive_price(side, 3.0, 40)
        size = rng.randint(40, 200)
        oid = self.next_id
        self.emit_add(out, side, price, size, GTC)
        out[-1] = (ICEBERG, oid, side, price, size, max(1, size // rng.randint(4, 10)))

    def plain_op(self, out: list, u: float) -> None:
        """One operation of the plain 60/10/30 mix, chosen by ``u`` in [0, 1)."""
        rng = self.rng
        if u >= self.P_GTC + self.P_IOC and (self.live or self.dead):
            self.emit_cancel(out)
            return
        tif = IOC if self.P_GTC <= u < self.P_GTC + self.P_IOC else GTC
        side = BUY if rng.random() < 0.5 else SELL
        p_cross = self.P_CROSS_IOC if tif == IOC else self.P_CROSS_GTC
        if rng.random() < p_cross:
            price = self.crossing_price(side)
            size = self.aggressive_size()
        else:
            if self.deep_share and rng.random() < self.deep_share:
                price = self.passive_price(side, self.deep_mean, self.deep_cap)
            else:
                price = self.passive_price(side, 3.0, 40)
            size = self.passive_size()
        self.emit_add(out, side, price, size, tif)


def make_flow(n: int, seed: int, deep: bool = False) -> Flow:
    """Build a reproducible flow of ``n`` timed operations (see module doc)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if deep:
        gen = _Gen(seed, target=DEEP_TARGET, deep_share=DEEP_SHARE, deep_mean=DEEP_MEAN, deep_cap=DEEP_CAP)
        prefill = gen.prefill(DEEP_PREFILL, DEEP_MEAN, DEEP_CAP)
    else:
        gen = _Gen(seed, target=NORMAL_TARGET, deep_share=0.0, deep_mean=0.0, deep_cap=0)
        prefill = gen.prefill(NORMAL_PREFILL, 5.0, 20)
    ops = gen.timed(n)
    return Flow(n=n, seed=seed, deep=deep, prefill=prefill, ops=ops)


def make_advanced_flow(n: int, seed: int, conditional_share: float = 0.10, iceberg_share: float = 0.05) -> Flow:
    """The normal flow with conditional and iceberg orders mixed in (module doc). The
    generator's reference book starts with one trade at the start price (the Clearway
    run seeds the same trade), so last-trade triggers have a price from the start."""
    if n < 0:
        raise ValueError("n must be >= 0")
    gen = _Gen(seed, target=NORMAL_TARGET, deep_share=0.0, deep_mean=0.0, deep_cap=0)
    prefill = gen.prefill(NORMAL_PREFILL, 5.0, 20)
    gen.book.last = START_PRICE
    ops = gen.timed_advanced(n, conditional_share, iceberg_share)
    return Flow(n=n, seed=seed, deep=False, prefill=prefill, ops=ops)


def flow_stats(flow: Flow) -> dict:
    """Descriptive statistics of a flow (for checks and reports; replays it)."""
    book = RefBook()
    for op in flow.prefill:
        book.apply(op)
    after_prefill = book.resting()
    levels_after_prefill = book.level_count()
    adds = iocs = cancels = trading_adds = dead_cancels = 0
    resting_min = resting_max = after_prefill
    for op in flow.ops:
        if op[0] == ADD:
            adds += 1
            if op[5] == IOC:
                iocs += 1
            t, _, _ = book.add(op[1], op[2], op[3], op[4], op[5])
            if t:
                trading_adds += 1
        else:
            cancels += 1
            if not book.cancel(op[1]):
                dead_cancels += 1
        r = book.resting()
        resting_min = min(resting_min, r)
        resting_max = max(resting_max, r)
    return {
        "ops": len(flow.ops),
        "gtc_adds": adds - iocs,
        "ioc_adds": iocs,
        "cancels": cancels,
        "dead_cancels": dead_cancels,
        "trading_add_share": trading_adds / adds if adds else 0.0,
        "resting_after_prefill": after_prefill,
        "levels_after_prefill": levels_after_prefill,
        "resting_min": resting_min,
        "resting_max": resting_max,
        "resting_end": book.resting(),
        "levels_end": book.level_count(),
    }
