"""The read model on a live node: fed on the event loop by ``Node.subscribe_loop``, it
follows every durable command, and re-synchronises from a snapshot when the loop falls
behind (the subscription overflows), ending equal to a model loaded from the state."""

from __future__ import annotations

import asyncio

from clearway.api.readmodel import ReadModel, Snapshot
from clearway.engine.loadgen import bench_genesis, command_stream, take
from clearway.engine.node import Node


def _view(model: ReadModel) -> dict:
    return {
        "seq": model.seq,
        "owners": dict(model.owners),
        "marks": dict(model.marks),
        "open": {i: (o.account, o.side, o.price, o.remaining) for i, o in model.orders.items() if o.state == "open"},
        "books": {i: (dict(b.bids), dict(b.asks)) for i, b in model.books.items()},
    }


def _run(tmp_path, max_backlog: int):
    commands = take(command_stream(3), 3_000)

    async def main():
        node = Node(tmp_path / "node", bench_genesis(), snapshot_every=0)
        model = ReadModel(node, max_backlog=max_backlog)
        model.start(asyncio.get_running_loop())
        try:
            for start in range(0, len(commands), 100):  # the loop is busy here: batches pile up for it
                assert node.submit_many(commands[start:start + 100]).wait(60)
            await model.wait_for(node.durable_seq, 60)
            fresh = ReadModel(node)
            fresh._load(node.query(Snapshot).result(60))
            return _view(model), _view(fresh), model.resyncs
        finally:
            model.stop()
            node.close(snapshot=False)

    return asyncio.run(main())


def test_the_read_model_follows_a_live_node(tmp_path):
    live, fresh, resyncs = _run(tmp_path, max_backlog=100_000)
    assert resyncs == 0
    assert live == fresh and live["seq"] == 3_000


def test_a_read_model_that_falls_behind_resynchronises_exactly(tmp_path):
    live, fresh, resyncs = _run(tmp_path, max_backlog=3)
    assert resyncs >= 1
    assert live == fresh and live["seq"] == 3_000
