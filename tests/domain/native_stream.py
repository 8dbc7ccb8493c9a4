"""A deterministic command stream for comparing the compiled domain with its source
(test_native.py): the loadgen mix on one perpetual (limit and IOC orders, cancels by
client order id, mark prices), with small deposits for half the accounts (so the
pre-trade margin check rejects) and sharper mark moves, and mixed in: icebergs,
good-til-time, post-only, fill-or-kill, market and reduce-only orders, stop orders on the
mark (held by conditional.py, entered through the compiled handler when they fire),
amends, batch cancels and cancel-alls; applied with fixed seq/ts. Not covered here (the
domain suite's second pass, on the source, covers them): options and portfolio margin,
oracle-driven liquidations, funding. ``run`` returns a digest of every event and the
final state hash; run as a script it prints them as JSON (the source-only side runs it in
a subprocess)."""

from __future__ import annotations

import hashlib
import json
import sys

import msgspec

from clearway.domain.commands import AmendOrder, CancelAll, CancelOrders, Deposit, PlaceOrder, SetMarkPrices
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.engine.loadgen import bench_genesis, command_stream

T0 = 1_700_000_000_000


def commands(n: int, seed: int = 7) -> list:
    replace = msgspec.structs.replace
    out = []
    stream = command_stream(seed)
    mid = 60_000_000_000
    for i in range(n):
        c = next(stream)
        ts = T0 + i * 20
        if type(c) is Deposit and c.deposit_id % 2:
            c = replace(c, amount=2_000_000 + 500_000 * (c.deposit_id % 7))  # $2.0–5.0
        elif type(c) is SetMarkPrices:
            mid = c.index["BTC"]
            if i % 3 == 0:  # a sharper move now and then: stop orders fire
                mid = mid * (100 + (i // 3) % 9 - 4) // 100
                mid -= mid % 100_000
                c = SetMarkPrices(0, 0, {"BTC": mid}, {0: mid})
        elif i > 200 and i % 37 == 0:  # amend an order placed a little earlier (or a closed one)
            c = AmendOrder(0, 0, 2 + i % 100, i // 3, 1 + i % 5, mid + (1 if i % 2 else -1) * 100_000 * (1 + i % 9))
        elif i > 200 and i % 53 == 0:
            c = CancelOrders(0, 0, 2 + i % 100, tuple(range(i // 3 - 4, i // 3)))
        elif i > 200 and i % 211 == 0:
            c = CancelAll(0, 0, 2 + i % 100)
        elif type(c) is PlaceOrder and i % 31 == 0:  # a stop on the mark, 1-8 ticks away
            c = replace(c, order_type=OrderType.STOP_MARKET, price=0, tif=TimeInForce.IOC,
                        trigger_price=mid + c.side * 100_000 * (1 + i % 8), trigger=TriggerSource.MARK)
        elif type(c) is PlaceOrder:
            if i % 11 == 0 and c.size > 2:
                c = replace(c, display_size=c.size // 3)
            if i % 13 == 0:
                c = replace(c, post_only=True)
            if i % 17 == 0 and c.tif == TimeInForce.IOC:
                c = replace(c, tif=TimeInForce.FOK)
            if i % 19 == 0:
                c = replace(c, order_type=OrderType.MARKET, price=0, post_only=False)
            if i % 23 == 0:
                c = replace(c, reduce_only=True)
            if i % 29 == 0 and c.tif == TimeInForce.GTC:
                c = replace(c, expire_at=ts + 2_000)
        out.append(replace(c, seq=i + 1, ts=ts))
    return out


def run(n: int) -> dict:
    state = ExchangeState(bench_genesis())
    digest = hashlib.sha256()
    encode = msgspec.msgpack.encode
    kinds: dict[str, int] = {}
    for command in commands(n):
        for event in apply(state, command):
            name = type(event).__name__
            kinds[name] = kinds.get(name, 0) + 1
            digest.update(encode(event))
    return {"events": digest.hexdigest(), "state_hash": state_hash(state), "event_kinds": kinds}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]))))
