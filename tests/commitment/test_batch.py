"""Batch data: round trips over random command streams, replay equivalence, sizes, and
clear errors on anything that is not a batch."""

from __future__ import annotations

import random
import zlib

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from clearway.commitment.authorisation import OPERATOR, Authorisation, AuthKind
from clearway.commitment.batch import (
    HEADER_BYTES, MAGIC, VERSION, Batch, BatchDecodeError, BatchEncodeError, BatchErrorCode, Compression,
    ForcedInclusion, batch_of, decode_batch, encode_batch,
)
from clearway.commitment.batch_codec import Reader, Writer, unzigzag, zigzag
from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, CancelOrders, Deposit, ListInstrument, PlaceOrder, PlaceTwap, SetMarginMode,
    SetMarketData, SetMarkPrices, Withdraw,
)
from clearway.domain.events import Trade
from clearway.domain.genesis import GenesisConfig
from clearway.domain.market import ExpiryData
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.domain.state import ExchangeState, apply, state_hash
from support import TICK, Exchange, perp_spec, usd

U63 = 2**63 - 1
SIG = bytes(range(65))

# ------------------------------------------------------------------------------ strategies

small = st.integers(0, 1_000)
anyint = st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(-5, 5))
text = st.text(max_size=12)
address = st.one_of(st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()), text)

place = st.builds(
    PlaceOrder, seq=st.just(0), ts=st.just(0), account=st.one_of(small, anyint), instrument=st.one_of(small, anyint),
    side=st.one_of(st.sampled_from([1, -1]), anyint), size=st.one_of(st.integers(1, 10**6), anyint),
    price=st.one_of(st.integers(0, 10**12).map(lambda p: p * 100), anyint),
    order_type=st.integers(0, 7), tif=st.integers(0, 9), post_only=st.booleans(), reduce_only=st.booleans(),
    client_order_id=text,
    trigger_price=st.one_of(st.just(0), st.just(0), anyint), trigger=st.one_of(st.just(0), st.just(0), anyint),
    display_size=st.one_of(st.just(0), st.just(0), anyint), expire_at=st.one_of(st.just(0), st.just(0), anyint),
)
commands = st.one_of(
    place, place, place,
    st.builds(CancelOrder, seq=st.just(0), ts=st.just(0), account=anyint, order_id=anyint, client_order_id=text),
    st.builds(CancelAll, seq=st.just(0), ts=st.just(0), account=anyint, instrument=anyint),
    st.builds(AmendOrder, seq=st.just(0), ts=st.just(0), account=anyint, order_id=anyint, size=anyint, price=anyint),
    st.builds(Deposit, seq=st.just(0), ts=st.just(0), owner=address, amount=anyint, deposit_id=anyint),
    st.builds(Withdraw, seq=st.just(0), ts=st.just(0), account=anyint, amount=anyint),
    st.builds(SetMarkPrices, seq=st.just(0), ts=st.just(0), index=st.dictionaries(text, anyint, max_size=2),
              marks=st.dictionaries(small, anyint, max_size=2)),
    st.builds(SetMarginMode, seq=st.just(0), ts=st.just(0), account=anyint, mode=anyint),
    st.builds(PlaceTwap, seq=st.just(0), ts=st.just(0), account=anyint, instrument=anyint, side=anyint, size=anyint,
              duration_ms=anyint, interval_ms=anyint, price_tolerance_ppm=anyint, limit_price=anyint,
              reduce_only=st.booleans(), client_order_id=text),
    st.builds(CancelOrders, seq=st.just(0), ts=st.just(0), account=anyint,
              order_ids=st.lists(anyint, max_size=120).map(tuple)),
)
signed = st.builds(lambda nonce, sig: Authorisation(AuthKind.SIGNED, nonce, sig),
                   st.integers(0, 2**64 - 1), st.binary(min_size=65, max_size=65))


@st.composite
def batches(draw):
    items = draw(st.lists(st.tuples(commands, st.one_of(st.just(OPERATOR), signed), st.integers(0, 2_000)),
                          max_size=40))
    first_seq = draw(st.integers(1, 10**9))
    ts = draw(st.integers(0, 2**40))
    cmds, auths = [], []
    for i, (command, auth, dt) in enumerate(items):
        ts += dt
        cmds.append(msgspec.structs.replace(command, seq=first_seq + i, ts=ts))
        signable = isinstance(command, (PlaceOrder, CancelOrder, CancelAll, AmendOrder, Withdraw))
        auths.append(auth if signable else OPERATOR)
    forced_seqs = draw(st.lists(st.one_of(st.just(0), st.integers(0, max(len(cmds) - 1, 0))), max_size=5))
    forced, request = [], draw(st.integers(1, 100))
    for offset in forced_seqs:
        forced.append(ForcedInclusion(request, first_seq + offset if cmds and offset else 0))
        request += draw(st.integers(1, 3))
    return Batch(draw(st.integers(0, 2**40)), tuple(cmds), tuple(auths), tuple(forced), first_seq)


# ------------------------------------------------------------------------------ round trips


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from([None, Compression.NONE, Compression.DEFLATE, Compression.LZMA2]))
def test_random_command_streams_round_trip_exactly(batch, compression):
    data = encode_batch(batch, compression)
    decoded = decode_batch(data)
    assert decoded == batch
    for original, copy in zip(batch.commands, decoded.commands):
        assert type(copy) is type(original)
        assert msgspec.msgpack.encode(copy) == msgspec.msgpack.encode(original)


def test_every_kind_round_trips_including_generic_fallbacks():
    expiry = ExpiryData(1_700_000_000_000, usd(25_000), 50_000_000_000, 10**10, 10**11, -3 * 10**11, 0, 10**11)
    cmds = [
        Deposit(0, 0, "0x" + "ab" * 20, usd(5), 1),
        Deposit(0, 0, "0xNOT-AN-ADDRESS", 7, 2),  # generic: rejected by the domain, still carried
        PlaceOrder(0, 0, 2, 0, 1, 10, usd(25_000), client_order_id="é✓"),
        PlaceOrder(0, 0, 2, 0, 0, 10, usd(25_000)),  # side 0: generic
        PlaceOrder(0, 0, 2, 0, -1, -3, -5),  # negative size and price: generic
        CancelOrder(0, 0, 2, 17), CancelOrder(0, 0, 3, 0, "x"), CancelAll(0, 0, 2), CancelAll(0, 0, 2, 4),
        AmendOrder(0, 0, 2, 17, 5, usd(1)), AmendOrder(0, 0, 2, 17, 0, usd(1)),
        Withdraw(0, 0, 2, usd(1)), Withdraw(0, 0, 2, -1),
        SetMarkPrices(0, 0, {"BTC": usd(25_000)}, {0: usd(25_000)}),
        SetMarketData(0, 0, "BTC", usd(25_000), 1_000_000, [expiry]),
        ListInstrument(0, 0, perp_spec(1)), SetMarginMode(0, 0, 2, 2),
        # issue 9: advanced order fields go the generic way, new command types too
        PlaceOrder(0, 0, 2, 0, 1, 10, usd(25_100), OrderType.STOP_LIMIT, trigger_price=usd(25_050),
                   trigger=TriggerSource.LAST),
        PlaceOrder(0, 0, 2, 0, -1, 10, 0, OrderType.STOP_MARKET, trigger_price=usd(24_000), trigger=1),
        PlaceOrder(0, 0, 2, 0, 1, 10, usd(25_000), display_size=2),
        PlaceOrder(0, 0, 2, 0, 1, 10, usd(25_000), expire_at=1_700_000_000_000),
        PlaceTwap(0, 0, 2, 0, 1, 600, 600_000, 60_000, 5_000, 0, True, "twap-1"),
        CancelOrders(0, 0, 2, (5, 9, 7)),
    ]
    cmds = [msgspec.structs.replace(c, seq=100 + i, ts=1_000 + i // 3) for i, c in enumerate(cmds)]
    auths = [Authorisation(AuthKind.SIGNED, 1_005, SIG) if isinstance(c, PlaceOrder) else OPERATOR for c in cmds]
    batch = Batch(7, tuple(cmds), tuple(auths), (ForcedInclusion(3, 111), ForcedInclusion(4)))
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch
    for original, copy in zip(batch.commands, decoded.commands):
        assert msgspec.msgpack.encode(copy) == msgspec.msgpack.encode(original)
    assert (decoded.first_seq, decoded.last_seq) == (100, 100 + len(cmds) - 1)


def test_an_empty_batch_keeps_its_first_sequence_and_forced_inclusions():
    batch = batch_of(3, [], forced=[ForcedInclusion(9)], first_seq=41)
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch and decoded.last_seq == 40


def test_varints_and_zigzag_round_trip_at_the_edges():
    values = [0, 1, 127, 128, 2**63, 2**64 - 1, 2**70 - 1]
    w = Writer()
    for v in values:
        w.uint(v)
    r = Reader(w.getvalue())
    assert [r.uint() for _ in values] == values
    assert [unzigzag(zigzag(v)) for v in (0, -1, 1, -(2**63), 2**63)] == [0, -1, 1, -(2**63), 2**63]
    with pytest.raises(ValueError):
        Writer().uint(2**70)


# ------------------------------------------------------------------------------ refusals at encoding


def test_encoding_refuses_gaps_missing_envelopes_and_signed_operator_commands():
    a = Withdraw(1, 0, 2, 5)
    with pytest.raises(BatchEncodeError) as gap:
        encode_batch(Batch(1, (a, Withdraw(3, 0, 2, 5))))
    assert gap.value.code == BatchErrorCode.NOT_CONSECUTIVE
    with pytest.raises(BatchEncodeError) as count:
        encode_batch(Batch(1, (a, Withdraw(2, 0, 2, 5)), (OPERATOR,)))
    assert count.value.code == BatchErrorCode.AUTHORISATION_MISMATCH
    deposit = Deposit(1, 0, "0x" + "00" * 20, 5, 1)
    with pytest.raises(BatchEncodeError) as signed_deposit:
        encode_batch(Batch(1, (deposit,), (Authorisation(AuthKind.SIGNED, 1, SIG),)))
    assert signed_deposit.value.code == BatchErrorCode.AUTHORISATION_MISMATCH


# ------------------------------------------------------------------------------ garbage


def _valid() -> bytes:
    cmds = [PlaceOrder(1 + i, 5, 2 + i % 3, 0, 1, 10 + i, usd(25_000) + i * TICK) for i in range(20)]
    return encode_batch(batch_of(1, cmds), Compression.DEFLATE)


@pytest.mark.parametrize(("data", "code"), [
    (b"", BatchErrorCode.TOO_SHORT),
    (b"CWB", BatchErrorCode.TOO_SHORT),
    (b"XYZ" + bytes(20), BatchErrorCode.BAD_MAGIC),
    (MAGIC + bytes([VERSION + 1, 0]) + bytes(10), BatchErrorCode.UNSUPPORTED_VERSION),
    (MAGIC + bytes([1, 9]) + bytes(10), BatchErrorCode.UNKNOWN_COMPRESSION),
    (MAGIC + bytes([1, 1]) + bytes(4) + b"\xff\xff\xff", BatchErrorCode.DECOMPRESSION_FAILED),
    (MAGIC + bytes([1, 0]) + bytes(4) + b"\x01", BatchErrorCode.CHECKSUM_MISMATCH),
])
def test_garbage_raises_a_clear_error_with_a_stable_code(data, code):
    with pytest.raises(BatchDecodeError) as err:
        decode_batch(data)
    assert err.value.code == code
    assert code.name in str(err.value)


def test_truncated_extended_or_flipped_data_is_refused():
    data = _valid()
    for cut in (HEADER_BYTES, len(data) // 2, len(data) - 1):
        with pytest.raises(BatchDecodeError):
            decode_batch(data[:cut])
    with pytest.raises(BatchDecodeError) as extra:
        decode_batch(data + b"\x00")
    assert extra.value.code == BatchErrorCode.DECOMPRESSION_FAILED
    original = decode_batch(data)
    rng = random.Random(5)
    refused = 0
    for _ in range(200):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        try:
            # a flip in the padding bits of the last DEFLATE byte changes nothing
            assert decode_batch(bytes(flipped)) == original
        except BatchDecodeError:
            refused += 1
    assert refused >= 190


def test_a_decompression_bomb_is_refused_before_it_is_inflated():
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = bomb.compress(bytes(20 << 20)) + bomb.flush()
    with pytest.raises(BatchDecodeError) as err:
        decode_batch(MAGIC + bytes([1, 1]) + bytes(4) + payload)
    assert err.value.code == BatchErrorCode.TOO_LARGE


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2))
def test_any_body_with_a_valid_checksum_decodes_or_raises_batch_decode_error(body, method):
    compressed = {0: body, 1: zlib.compress(body)[2:-4], 2: body}[method]
    data = MAGIC + bytes([1, method]) + zlib.crc32(body).to_bytes(4, "big") + compressed
    try:
        decode_batch(data)
    except BatchDecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_bodies_of_valid_batches_never_raise_anything_else(data):
    batch = data.draw(batches())
    body = bytearray(zlib.decompress(encode_batch(batch, Compression.DEFLATE)[HEADER_BYTES:], -15))
    for _ in range(data.draw(st.integers(1, 4))):
        if body:
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    blob = MAGIC + bytes([1, 0]) + zlib.crc32(bytes(body)).to_bytes(4, "big") + bytes(body)
    try:
        decode_batch(blob)
    except BatchDecodeError:
        pass


# ------------------------------------------------------------------------------ replay and size


def _taker_flow(seed: int, trades_wanted: int) -> tuple[Exchange, int, int]:
    """Five market makers quote ten levels a side; takers send IOC orders that cross."""
    rng = random.Random(seed)
    ex = Exchange(GenesisConfig(instruments=[perp_spec(0)]))
    accounts = [ex.deposit(i, usd(10_000_000)) for i in range(1, 41)]
    ex.marks(usd(25_000))
    start, trades, mid = len(ex.commands), 0, usd(25_000)
    for level in range(10):
        for side in (1, -1):
            ex.place(accounts[level % 5], side, 50_000, mid - side * (level + 1) * TICK)
    while trades < trades_wanted:
        side = rng.choice((1, -1))
        events = ex.place(rng.choice(accounts[5:]), side, rng.randint(1, 200) * 10, mid + side * 3 * TICK,
                          tif=TimeInForce.IOC)
        trades += sum(isinstance(e, Trade) for e in events)
        if rng.random() < 0.3:
            side = rng.choice((1, -1))
            ex.place(rng.choice(accounts[:5]), side, 20_000, mid - side * rng.randint(1, 3) * TICK)
    return ex, start, trades


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.lists(st.integers(1, 200), min_size=1, max_size=8))
def test_replaying_decoded_batches_gives_the_state_hash_of_the_original_run(seed, cuts):
    ex, _, _ = _taker_flow(seed, 60)
    state = ExchangeState(ex.genesis)
    number, start, cmds = 0, 0, ex.commands
    while start < len(cmds):
        size = cuts[number % len(cuts)]
        number += 1
        for command in decode_batch(encode_batch(batch_of(number, cmds[start:start + size]))).commands:
            apply(state, command)
        start += size
    assert state_hash(state) == ex.hash()


def test_a_thousand_api_key_trades_fit_in_about_ten_bytes_each(capsys):
    ex, start, trades = _taker_flow(1, 1_000)
    batch = batch_of(1, ex.commands[start:])
    data = encode_batch(batch)
    nonzero = sum(1 for b in data if b)
    floor_gas = 10 * (len(data) - nonzero) + 40 * nonzero  # EIP-7623 floor of these bytes
    with capsys.disabled():
        print(f"\n{len(batch.commands)} commands, {trades} trades: {len(data)} bytes, "
              f"{len(data) / trades:.2f} B/trade, calldata floor {floor_gas / trades:.0f} gas/trade")
    assert len(data) / trades <= 10
    assert decode_batch(data) == batch


def test_advanced_orders_replay_from_batch_data_to_the_same_state_hash_and_roots():
    """Conditional orders (fired and waiting), icebergs, a TWAP on the clock, good-til-time
    expiry and a batch cancel, carried by batch data and replayed by a ``Replica`` (what a
    verifier runs): the same state hash, and the same root as a replica fed the original
    commands."""
    from clearway.commitment.replay import Replica
    from clearway.domain.events import IcebergRefilled, OrderTriggered, TwapProgress

    ex = Exchange(GenesisConfig(instruments=[perp_spec(0)]))
    a, b, c = (ex.deposit(owner, usd(1_000_000)) for owner in (1, 2, 3))
    ex.marks(usd(25_000))
    seen = []
    seen += ex.place(b, -1, 5_000, usd(25_100), display_size=1_000, client_order_id="ice")
    seen += ex.place(a, 1, 1_000, usd(25_100), tif=TimeInForce.IOC)  # last trade 25,100
    seen += ex.place(a, 1, 2_000, 0, order_type=OrderType.STOP_MARKET, trigger_price=usd(25_200),
                     trigger=TriggerSource.MARK)
    seen += ex.place(c, -1, 1_000, usd(24_000), order_type=OrderType.STOP_LIMIT, trigger_price=usd(25_000),
                     trigger=TriggerSource.LAST, expire_at=ex.ts + 120_000)
    seen += ex.place(c, 1, 500, usd(24_500), expire_at=ex.ts + 30_000)
    seen += ex.run(PlaceTwap, account=c, instrument=0, side=-1, size=3_000, duration_ms=300_000, interval_ms=60_000,
                   limit_price=usd(24_900))
    seen += ex.marks(usd(25_200))  # fires the stop-market against the iceberg
    for _ in range(6):
        ex.ts += 60_000
        seen += ex.marks(usd(25_200))
    ids = [o for o in ex.state.orders][:3]
    seen += ex.run(CancelOrders, account=b, order_ids=tuple(ids) + (10**6,))
    assert any(isinstance(e, OrderTriggered) for e in seen) and any(isinstance(e, IcebergRefilled) for e in seen)
    assert sum(isinstance(e, TwapProgress) for e in seen) >= 4
    original, decoded = Replica(ex.genesis), Replica(ex.genesis)
    for number, start in enumerate(range(0, len(ex.commands), 5), start=1):
        batch = batch_of(number, ex.commands[start:start + 5])
        copy = decode_batch(encode_batch(batch))
        assert copy == batch
        assert decoded.apply_batch(copy).state_root == original.apply_batch(batch).state_root
    assert state_hash(decoded.state) == state_hash(original.state) == ex.hash()
