"""A deterministic command stream for comparing the compiled domain with its source
(test_native.py): the loadgen mix, with small deposits for half the accounts (so the
margin check and liquidations bind) and every order feature of the compiled handlers
mixed in (icebergs, good-til-time, post-only, fill-or-kill, market, reduce-only), applied
with fixed seq/ts. ``run`` returns a digest of every event and the final state hash; run
as a script it prints them as JSON (the source-only side runs it in a subprocess)."""

from __future__ import annotations

import hashlib
import json
import sys

import msgspec

from clearway.domain.commands import Deposit, PlaceOrder, SetMarkPrices
from clearway.domain.orders import OrderType, TimeInForce
from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.engine.loadgen import bench_genesis, command_stream

T0 = 1_700_000_000_000


def commands(n: int, seed: int = 7) -> list:
    replace = msgspec.structs.replace
    out = []
    stream = command_stream(seed)
    for i in range(n):
        c = next(stream)
        ts = T0 + i * 20
        if type(c) is Deposit and c.deposit_id % 2:
            c = replace(c, amount=2_000_000 + 500_000 * (c.deposit_id % 7))  # $2.0–5.0
        elif type(c) is SetMarkPrices and i % 3 == 0:
            # a sharper move now and then: liquidations of the small accounts
            mid = c.index["BTC"] * (100 + (i // 3) % 9 - 4) // 100
            mid -= mid % 100_000
            c = SetMarkPrices(0, 0, {"BTC": mid}, {0: mid})
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
