"""A synthetic, deterministic command mix for benchmarks, crash tests and tests.

Not a market model (``clearway.sim`` has those): just a realistic shape of sequencer
traffic on one perpetual — deposits that create accounts, an operator price, then limit
orders around a random-walking mid (mostly resting, some crossing IOC), cancels by client
order id, and a mark-price update every ``mark_every`` commands. Commands leave the
generator with ``seq = ts = 0``; the sequencer assigns both.
"""

from __future__ import annotations

import random
from typing import Iterator

from clearway.domain.commands import CancelOrder, Command, Deposit, PlaceOrder, SetMarkPrices
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.orders import TimeInForce

BTC_PERP = InstrumentSpec(
    0, "BTC", Kind.PERPETUAL, tick_size=100_000, size_decimals=4, size_increment=1, min_size=1,
    maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000,
)
"""BTC-PERP: $0.10 ticks (micro-USDC), 0.0001 BTC lots, 5% / 3% margin fractions."""

START_MID = 60_000_000_000  # $60,000 in micro-USDC
DEPOSIT = 10_000_000_000_000  # $10M per account, so the margin check never binds


def bench_genesis() -> GenesisConfig:
    """Genesis with the single instrument BTC-PERP (id 0)."""
    return GenesisConfig(instruments=[BTC_PERP])


def owner_address(i: int) -> str:
    """A deterministic lower-case 20-byte hex address for account number ``i``."""
    return "0x" + f"{i + 0x1000:040x}"


def command_stream(seed: int = 1, accounts: int = 100, mark_every: int = 1_000,
                   max_open: int = 20) -> Iterator[Command]:
    """An endless deterministic stream of commands (seq = ts = 0).

    Shape: ``accounts`` deposits (ids 1..accounts), one SetMarkPrices, then per command
    about 60% resting GTC limit orders 1–20 ticks from the mid, 10% IOC orders crossing
    the mid by up to 5 ticks, 30% cancels (by client order id) of an order the account
    placed earlier (some already filled, so cancels are sometimes rejected — also
    realistic), and a SetMarkPrices every ``mark_every`` commands. An account with
    ``max_open`` live orders cancels its oldest instead of placing, which keeps the book
    near ``accounts × max_open`` resting orders (2,000 by default).
    """
    rng = random.Random(seed)
    for i in range(accounts):
        yield Deposit(0, 0, owner_address(i), DEPOSIT, i + 1)
    tick = BTC_PERP.tick_size
    mid = START_MID
    yield SetMarkPrices(0, 0, {"BTC": mid}, {0: mid})
    first_account = 2  # 0 and 1 are the fee account and the insurance fund
    live: list[list[str]] = [[] for _ in range(accounts)]
    next_coid = 0
    n = 0
    while True:
        n += 1
        if n % mark_every == 0:
            yield SetMarkPrices(0, 0, {"BTC": mid}, {0: mid})
            continue
        if rng.random() < 0.05:
            mid += tick if rng.random() < 0.5 else -tick
        a = rng.randrange(accounts)
        r = rng.random()
        coids = live[a]
        if len(coids) >= max_open:
            yield CancelOrder(0, 0, first_account + a, 0, coids.pop(0))
            continue
        if r < 0.30 and coids:
            yield CancelOrder(0, 0, first_account + a, 0, coids.pop(rng.randrange(len(coids))))
            continue
        side = 1 if rng.random() < 0.5 else -1
        next_coid += 1
        coid = "c" + str(next_coid)
        if r < 0.40:
            price = mid + side * tick * rng.randint(0, 5)
            yield PlaceOrder(0, 0, first_account + a, 0, side, rng.randint(1, 50), price,
                             tif=TimeInForce.IOC, client_order_id=coid)
        else:
            price = mid - side * tick * rng.randint(1, 20)
            coids.append(coid)
            yield PlaceOrder(0, 0, first_account + a, 0, side, rng.randint(1, 20), price,
                             client_order_id=coid)


def take(stream: Iterator[Command], n: int) -> list[Command]:
    """The next ``n`` commands of ``stream`` as a list."""
    return [next(stream) for _ in range(n)]
