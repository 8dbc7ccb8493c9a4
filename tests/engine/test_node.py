"""The sequencer: numbering, acknowledgement after durability, group commit, refusals at
the door, fail-stop, subscribers."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from clearway.domain.commands import Deposit, PlaceOrder, encode_command
from clearway.domain.events import Deposited, Rejected
from clearway.engine import CommandRejected, EngineErrorCode, NodeFailed
from clearway.engine.delivery import LoopSubscription
from clearway.engine.loadgen import owner_address

from engine_support import T0, GatedJournal, reference_hash, wait_until


def test_commands_get_consecutive_seq_and_the_injected_clock_and_their_events(backend, genesis, commands):
    with backend.node(genesis) as node:
        tickets = [node.submit(c) for c in commands]
        events = [t.result(timeout=60) for t in tickets]
        sequenced = [t.command for t in tickets]
        assert [t.seq for t in tickets] == list(range(1, len(commands) + 1))
        assert {c.ts for c in sequenced} == {T0}
        assert isinstance(events[0][-1], Deposited)
        assert node.state_hash() == reference_hash(genesis, commands)
    assert backend.count() == len(commands)


def test_clock_going_backwards_never_makes_timestamps_go_backwards(backend, genesis):
    times = iter([T0 + 10, T0])
    with backend.node(genesis, clock=lambda: next(times)) as node:
        first = node.submit(Deposit(0, 0, owner_address(0), 5, 1))
        first.wait(60)
        second = node.submit(Deposit(0, 0, owner_address(0), 5, 2))
        assert [first.command.ts, second.command.ts if second.wait(60) else None] == [T0 + 10, T0 + 10]


def test_acknowledgement_is_released_only_after_the_commit_returns(backend, genesis):
    journal = GatedJournal(backend.journal())
    journal.gate.clear()
    node = backend.node(genesis, journal=journal)
    ticket = node.submit(Deposit(0, 0, owner_address(0), 1_000, 1))
    assert journal.entered.wait(60)  # the commit has started but not returned
    assert not ticket.done()
    with pytest.raises(TimeoutError):
        ticket.result(timeout=0)
    journal.gate.set()
    assert isinstance(ticket.result(timeout=60)[-1], Deposited)
    assert journal.appends == [[1]]
    node.close()


def test_commands_that_arrive_during_a_commit_share_the_next_transaction(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    journal.gate.clear()
    node = backend.node(genesis, journal=journal)
    first = node.submit(commands[0])
    assert journal.entered.wait(60)
    rest = [node.submit(c) for c in commands[1:]]
    wait_until(lambda: node.stats()["queued_seq"] == len(commands))  # all queued, none durable
    assert not any(t.done() for t in rest)
    journal.gate.set()
    for ticket in [first, *rest]:
        ticket.result(timeout=60)
    assert journal.appends == [[1], list(range(2, len(commands) + 1))]
    assert node.stats()["commits"] == 2
    node.close()


@pytest.mark.parametrize("bad, code", [
    (b"\xc1", EngineErrorCode.MALFORMED_COMMAND),  # not MessagePack
    (b"", EngineErrorCode.MALFORMED_COMMAND),
    (msgspec.msgpack.encode(["dep", 0, 0, "0xab", "ten", 1]), EngineErrorCode.MALFORMED_COMMAND),
    (msgspec.msgpack.encode(["dep", 0, 0]), EngineErrorCode.MALFORMED_COMMAND),  # truncated
    (encode_command(Deposit(0, 0, owner_address(0), 5, 1))[:-1], EngineErrorCode.MALFORMED_COMMAND),
    (msgspec.msgpack.encode(["launch_rocket", 0, 0]), EngineErrorCode.UNKNOWN_COMMAND_TYPE),
    (msgspec.msgpack.encode(["dep", 0, 0, "0x" + "ab" * 20_000, 5, 1]), EngineErrorCode.OVERSIZED_COMMAND),
])
def test_bad_bytes_are_refused_without_touching_the_journal(backend, genesis, bad, code):
    journal = GatedJournal(backend.journal())
    with backend.node(genesis, journal=journal) as node:
        with pytest.raises(CommandRejected) as refused:
            node.submit_bytes(bad)
        assert refused.value.code == code
        node.submit(Deposit(0, 0, owner_address(0), 5, 1)).result(timeout=60)
        assert node.last_seq == 1
    assert journal.appends == [[1]]
    assert backend.count() == 1


@pytest.mark.parametrize("bad, code", [
    (Rejected(1001, "an event, not a command"), EngineErrorCode.UNKNOWN_COMMAND_TYPE),
    ({"t": "dep"}, EngineErrorCode.UNKNOWN_COMMAND_TYPE),
    (PlaceOrder(0, 0, 2, 0, 1, 1.5, 100_000), EngineErrorCode.MALFORMED_COMMAND),  # float size
    (PlaceOrder(0, 0, 2, 0, 1, 2**70, 100_000), EngineErrorCode.MALFORMED_COMMAND),  # overflows
    (Deposit(0, 0, None, 5, 1), EngineErrorCode.MALFORMED_COMMAND),
])
def test_bad_commands_are_refused_without_touching_the_journal(backend, genesis, bad, code):
    journal = GatedJournal(backend.journal())
    with backend.node(genesis, journal=journal) as node:
        with pytest.raises(CommandRejected) as refused:
            node.submit(bad)
        assert refused.value.code == code
        assert node.last_seq == 0
    assert journal.appends == []
    assert backend.count() == 0


def test_commands_after_shutdown_are_refused_and_not_journaled(backend, genesis):
    node = backend.node(genesis)
    node.submit(Deposit(0, 0, owner_address(0), 5, 1)).result(timeout=60)
    node.close()
    with pytest.raises(CommandRejected) as refused:
        node.submit(Deposit(0, 0, owner_address(0), 5, 2))
    assert refused.value.code == EngineErrorCode.NODE_CLOSED
    assert backend.count() == 1


def test_close_makes_every_accepted_command_durable_and_acknowledges_it(backend, genesis, commands):
    node = backend.node(genesis)
    tickets = [node.submit(c) for c in commands]
    node.close()
    assert all(t.done() and t.seq for t in tickets)
    assert backend.count() == len(commands)


def test_too_many_commands_in_flight_are_refused_as_overloaded(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    journal.gate.clear()
    node = backend.node(genesis, journal=journal, max_in_flight=3)
    tickets = [node.submit(c) for c in commands[:3]]
    with pytest.raises(CommandRejected) as refused:
        node.submit(commands[3])
    assert refused.value.code == EngineErrorCode.OVERLOADED
    journal.gate.set()
    for ticket in tickets:
        ticket.result(timeout=60)
    node.submit(commands[3]).result(timeout=60)
    node.close()
    assert backend.count() == 4


def test_a_failed_commit_fails_pending_commands_and_stops_the_node(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    node = backend.node(genesis, journal=journal)
    for ticket in [node.submit(c) for c in commands[:10]]:
        ticket.result(timeout=60)
    journal.fail_with = OSError("disk full")
    doomed = node.submit(commands[10])
    with pytest.raises(NodeFailed):
        doomed.result(timeout=60)
    with pytest.raises(CommandRejected) as refused:
        node.submit(commands[11])
    assert refused.value.code == EngineErrorCode.NODE_FAILED
    node.close()
    with backend.node(genesis) as again:  # recovery keeps exactly the durable commands
        assert again.recovery.last_seq == 10
        assert again.state_hash() == reference_hash(genesis, commands[:10])


def test_a_command_on_which_apply_raises_is_not_journaled_and_stops_the_node(backend, genesis, commands, monkeypatch):
    import clearway.engine.node as node_module

    real_apply = node_module.apply

    def apply_with_bug(state, command):
        if command.seq == 5:
            raise ZeroDivisionError("domain bug")
        return real_apply(state, command)

    monkeypatch.setattr(node_module, "apply", apply_with_bug)
    journal = GatedJournal(backend.journal())
    journal.gate.clear()
    node = backend.node(genesis, journal=journal)
    tickets = node.submit_many(commands[:8])  # one batch: 1-4 apply, 5 raises
    journal.gate.set()
    for ticket in tickets[:4]:
        ticket.result(timeout=60)
    for ticket in tickets[4:]:
        with pytest.raises(NodeFailed):
            ticket.result(timeout=60)
    with pytest.raises(CommandRejected) as refused:
        node.submit(commands[8])
    assert refused.value.code == EngineErrorCode.NODE_FAILED
    node.close()
    monkeypatch.setattr(node_module, "apply", real_apply)
    assert backend.count() == 4
    with backend.node(genesis) as again:
        assert again.recovery.last_seq == 4


def test_subscribers_receive_every_durable_command_in_order(backend, genesis, commands):
    with backend.node(genesis) as node:
        sub = node.subscribe()
        tickets = [node.submit(c) for c in commands]
        received = [sub.get(timeout=60) for _ in commands]
        assert [p.seq for p in received] == list(range(1, len(commands) + 1))
        assert [p.events for p in received] == [t.result(timeout=60) for t in tickets]
    assert sub.get(timeout=60) is None  # ended by close


def test_a_subscriber_that_falls_behind_is_dropped_not_waited_for(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    with backend.node(genesis, journal=journal) as node:
        sub = node.subscribe(max_backlog=2)
        for command in commands[:5]:  # one commit each: five batches for a backlog of two
            node.submit(command).result(timeout=60)
        assert [sub.get(timeout=60).seq for _ in range(2)] == [1, 2]
        assert sub.get(timeout=60) is None and sub.overflowed
        node.submit(commands[5]).result(timeout=60)


def test_a_loop_subscription_delivers_every_durable_command_in_order_on_the_loop(backend, genesis, commands):
    import threading

    async def main():
        loop = asyncio.get_running_loop()
        got, threads, ended = [], set(), asyncio.Event()

        def on_published(items, end):
            threads.add(threading.get_ident())
            got.extend(items)
            if end:
                ended.set()

        node = backend.node(genesis)
        node.subscribe_loop(loop, on_published)
        tickets = [node.submit(c) for c in commands]
        events = [await t for t in tickets]
        await asyncio.wait_for(_until(lambda: len(got) >= len(commands)), 60)
        node.close()
        await asyncio.wait_for(ended.wait(), 60)
        return got, threads, events

    got, threads, events = asyncio.run(main())
    assert [p.seq for p in got] == list(range(1, len(commands) + 1))
    assert [p.events for p in got] == events
    assert threads == {threading.get_ident()}  # only ever called on the loop's thread


def test_a_loop_subscription_that_falls_behind_ends_overflowed(backend, genesis, commands):
    async def main():
        loop = asyncio.get_running_loop()
        calls = []
        node = backend.node(genesis)
        sub = node.subscribe_loop(loop, lambda items, end: calls.append(([p.seq for p in items], end)),
                                  max_backlog=2)
        for command in commands[:5]:  # the loop does not run meanwhile: five batches queue up
            node.submit(command).result(timeout=60)
        await asyncio.sleep(0)
        node.submit(commands[5]).result(timeout=60)  # the node goes on without it
        node.close()
        await asyncio.sleep(0)
        return calls, sub

    calls, sub = asyncio.run(main())
    assert sub.overflowed
    assert calls == [([1, 2], True)]


def test_a_loop_subscriber_that_raises_still_gets_the_rest(backend, genesis, commands):
    async def main():
        loop = asyncio.get_running_loop()
        got, calls = [], [0]

        def on_published(items, end):
            calls[0] += 1
            if calls[0] == 1:
                raise RuntimeError("consumer bug")
            got.extend(p.seq for p in items)

        node = backend.node(genesis)
        # one item per delivery: the first call raises while the rest of the same group
        # still waits to be delivered in later loop iterations
        node._register(LoopSubscription(node, loop, on_published, 100, chunk=1))
        node.submit_many(commands[:3]).wait(60)  # one group, one commit, one push
        await asyncio.wait_for(_until(lambda: 3 in got), 60)
        node.close()
        return got

    assert asyncio.run(main()) == [2, 3]


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


def test_an_empty_group_is_acknowledged_at_once(backend, genesis):
    with backend.node(genesis) as node:
        tickets = node.submit_many([])
        assert len(tickets) == 0 and tickets.done() and tickets.wait(0) and tickets.results(0) == []


def test_tickets_can_be_awaited_from_asyncio(backend, genesis, commands):
    with backend.node(genesis) as node:
        async def main():
            return await asyncio.gather(*(node.submit(c) for c in commands[:50]))

        results = asyncio.run(main())
        assert all(isinstance(events[-1], Deposited) for events in results)


def test_the_node_raises_the_young_gc_threshold_while_it_runs_and_restores_it(backend, genesis, commands):
    import gc

    before = gc.get_threshold()
    node = backend.node(genesis, gc_young_threshold=12_345)
    try:
        assert gc.get_threshold() == (12_345, *before[1:])
        assert node.submit_many(commands[:20]).wait(60)
    finally:
        node.close()
    assert gc.get_threshold() == before
    with backend.node(genesis, gc_young_threshold=None):
        assert gc.get_threshold() == before


def test_process_settings_come_back_when_the_last_of_several_nodes_closes(tmp_path, genesis):
    """Nodes closed in the order they were opened: the first close must not restore the
    process's settings under the second node, nor leave the node's behind at the end."""
    import gc
    import sys

    from clearway.engine.node import Node

    before, switch = gc.get_threshold(), sys.getswitchinterval()
    first = Node(tmp_path / "a", genesis, gc_young_threshold=12_345, switch_interval=0.0007, freeze_gc=False)
    second = Node(tmp_path / "b", genesis, gc_young_threshold=12_345, switch_interval=0.0007, freeze_gc=False)
    try:
        first.close()
        assert gc.get_threshold() == (12_345, *before[1:])
        assert sys.getswitchinterval() == 0.0007
    finally:
        first.close()
        second.close()
    assert gc.get_threshold() == before
    assert sys.getswitchinterval() == switch
