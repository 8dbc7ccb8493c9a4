"""Signed advanced orders (issue 9), TWAPs and batch cancels verify from the batch data;
a sequencer that changes any field the owner signed (trigger, display size, expiry, TWAP
parameters, the cancelled ids) is refused with BAD_SIGNATURE naming the command and the
victim, on the embedded chain (DrillSequencer + three verifiers). Every field one by one:
test_verifier_checks.py."""

from __future__ import annotations

import msgspec
import pytest
from verifier_harness import first_alarms

from clearway.domain import events as ev
from clearway.domain.commands import CancelOrders, PlaceOrder, PlaceTwap
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.drill import TICK


def _commands(s):
    """Alice's stop-limit (index trigger, good-til-time), iceberg, TWAP and a batch cancel."""
    btc, alice, ts = s.prices["BTC"], s.account("alice"), s.seq.ts
    stop = PlaceOrder(0, 0, alice, 0, -1, 1_000, btc - 20 * TICK, OrderType.STOP_LIMIT, TimeInForce.GTC,
                      trigger_price=btc - 10 * TICK, trigger=TriggerSource.INDEX, expire_at=ts + 3_600_000)
    iceberg = PlaceOrder(0, 0, alice, 0, 1, 2_000, btc - 30 * TICK, display_size=500, expire_at=ts + 3_600_000)
    twap = PlaceTwap(0, 0, alice, 0, 1, 1_000, 600_000, 60_000, 2_000)
    return stop, iceberg, twap


def test_signed_advanced_orders_twaps_and_batch_cancels_are_attested(honest):
    s = honest
    alice = s.user("alice")
    before = [v.stats.signed_commands for v in s.verifiers]
    ids = []
    for command in _commands(s):
        events = s.seq.submit(command, signer=alice)
        accepted = [e for e in events if type(e) in (ev.OrderAccepted, ev.ConditionalAccepted, ev.TwapAccepted)]
        assert accepted, events
        ids.append(accepted[0].order_id)
    s.seq.submit(CancelOrders(0, 0, s.account("alice"), tuple(ids)), signer=alice)
    prepared = s.honest_batch()
    assert s.client.finalised_count() == prepared.batch_number
    for verifier, signed_before in zip(s.verifiers, before):
        assert verifier.alarms == [] and verifier.height == prepared.batch_number
        assert verifier.stats.signed_commands - signed_before == 4


@pytest.mark.parametrize(("which", "change"), [(0, {"trigger_price": 1}), (1, {"display_size": 2_000})],
                         ids=["stop-trigger-price", "iceberg-display-size"])
def test_a_changed_signed_order_field_is_refused_on_chain(honest, which, change):
    s = honest
    s.first_seq = s.seq.replica.state.last_seq + 1
    genuine = _commands(s)[which]
    auth = s.seq.sign(genuine, s.user("alice"), s.user("alice").address.lower())  # seq, ts are not signed
    s.seq.submit(msgspec.structs.replace(genuine, **change), auth=auth)
    _refused(s)


def test_a_changed_id_list_of_a_signed_batch_cancel_is_refused_on_chain(honest):
    s = honest
    s.first_seq = s.seq.replica.state.last_seq + 1
    alice = s.user("alice")
    genuine = CancelOrders(0, 0, s.account("alice"), (5, 6))
    auth = s.seq.sign(genuine, alice, alice.address.lower())
    s.seq.submit(msgspec.structs.replace(genuine, order_ids=(5, 6, 7)), auth=auth)
    _refused(s)


def _refused(s):
    prepared = s.seq.build()
    s.seq.post(prepared)
    s.sync()
    alarms = first_alarms(s, prepared.batch_number)
    assert all(a is not None for a in alarms)
    assert {(a.code, a.seq) for a in alarms} == {(AlarmCode.BAD_SIGNATURE, s.first_seq)}
    assert [a.account for a in alarms[0].accounts] == [s.account("alice")]
    assert s.client.finalised_count() < prepared.batch_number
