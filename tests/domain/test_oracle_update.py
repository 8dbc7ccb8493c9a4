"""OracleUpdate through apply(): quorum, per-report rejections, halts, the perp mark."""

from __future__ import annotations

from clearway.domain.commands import OracleUpdate
from clearway.domain.errors import ErrorCode
from clearway.domain.events import (
    MarketHalted, MarketResumed, MarksUpdated, OracleReportRejected, OracleUpdated, Rejected,
)
from clearway.domain.genesis import GenesisConfig
from clearway.domain.oracle import OracleReport, sign_report
from clearway.domain.orders import BUY, SELL
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import state_hash
from lifecycle_support import KEYS, MINUTE, advance, lifecycle_genesis, oracle, reports
from support import BTC, Exchange, kinds, usd


def _exchange(**overrides) -> Exchange:
    ex = Exchange(lifecycle_genesis(**overrides))
    ex.deposit(0xA1, usd(1_000_000))
    ex.deposit(0xB2, usd(1_000_000))
    return ex


def _body(ex: Exchange) -> list:
    """The state without the sequence number and time: what a rejected command must not change."""
    return ex.state.canonical()[3:]


def test_quorum_of_signed_reports_installs_the_median_index_and_the_perp_mark():
    ex = _exchange()
    events = ex.run(OracleUpdate, underlying="BTC",
                    reports=reports(ex, 0, prices=[usd(20_000), usd(20_010), usd(20_030), usd(21_000)]))
    assert kinds(events) == ["OracleUpdated"]
    median = usd(20_020)
    assert events[0].index == median and events[0].marks == {0: median}  # empty book: mark = index
    assert ex.state.index["BTC"] == median and ex.state.marks[0] == median
    assert ex.state.oracle_last["BTC"] == (median, ex.ts)
    assert ex.state.stable_price == 1_000_000


def test_a_bad_report_is_rejected_with_its_code_and_the_rest_still_counts():
    ex = _exchange()
    good = reports(ex, 20_000)
    forged = OracleReport(good[0].reporter, "BTC", ex.ts, usd(40_000), 1_000_000, (), good[0].signature)
    events = ex.run(OracleUpdate, underlying="BTC", reports=(forged, *good[1:]))
    assert events[0] == OracleReportRejected("BTC", 0, good[0].reporter, ErrorCode.ORACLE_BAD_SIGNATURE)
    assert isinstance(events[1], OracleUpdated) and events[1].index == usd(20_000)


def test_below_quorum_the_update_changes_nothing_but_reports_its_rejections():
    ex = _exchange()
    oracle(ex, 20_000)
    before = _body(ex)
    stale = sign_report(KEYS[0], "BTC", ex.ts - 61_000, usd(20_500), 1_000_000)
    events = ex.run(OracleUpdate, underlying="BTC", reports=(stale, *reports(ex, 20_500, keys=KEYS[1:3])))
    assert kinds(events) == ["OracleReportRejected", "Rejected"]
    assert events[0].code == ErrorCode.ORACLE_STALE_REPORT
    assert events[1].code == ErrorCode.ORACLE_NO_QUORUM
    assert _body(ex) == before


def test_a_jump_beyond_max_move_within_the_window_is_rejected():
    ex = _exchange()
    oracle(ex, 20_000)
    advance(ex, 30_000)
    events = oracle(ex, 23_000)
    assert [e.code for e in events] == [ErrorCode.ORACLE_MAX_MOVE] * 4 + [ErrorCode.ORACLE_NO_QUORUM]
    advance(ex, 31_000)  # the last index is now older than the 60 s window
    assert kinds(oracle(ex, 23_000))[-1] == "OracleUpdated"


def test_without_configured_reporters_an_update_is_rejected():
    ex = Exchange(GenesisConfig(instruments=lifecycle_genesis().instruments))
    events = ex.run(OracleUpdate, underlying="BTC", reports=reports(ex, 20_000))
    assert events == [Rejected(ErrorCode.ORACLE_NOT_CONFIGURED, events[0].message)]


def test_no_update_for_halt_after_halts_the_market_and_the_next_valid_one_resumes_it():
    ex = _exchange()
    oracle(ex, 20_000)
    ex.place(2, SELL, BTC, usd(20_100))
    ex.place(3, BUY, BTC, usd(20_100))           # 3 is long 1 BTC
    ex.place(2, SELL, BTC, usd(20_200))          # a resting ask
    halted_at = ex.state.oracle_last["BTC"][1] + 300_000
    ex.ts = halted_at                            # exactly halt_after: not yet halted
    assert "MarketHalted" not in kinds(ex.place(3, BUY, 1, usd(19_000)))
    ex.ts = halted_at + 1
    events = ex.place(3, BUY, 1, usd(19_000))    # adds risk: refused
    assert events[0] == MarketHalted("BTC", halted_at - 300_000)
    assert events[-1].code == ErrorCode.MARKET_HALTED
    assert kinds(ex.place(3, SELL, BTC // 2, usd(21_000)))[-1] == "OrderAccepted"  # reduces: accepted
    assert kinds(ex.cancel(2, order_id=3)) == ["OrderCancelled"]
    assert ex.withdraw(3, usd(1))[0].code == ErrorCode.MARKET_HALTED
    events = oracle(ex, 20_050)
    assert isinstance(events[0], MarketResumed)
    assert ex.state.halted == set()
    assert kinds(ex.place(3, BUY, 1, usd(19_000)))[-1] == "OrderAccepted"


def test_perp_mark_follows_a_thin_books_premium_only_through_the_ema():
    ex = _exchange()
    oracle(ex, 20_000)
    ex.place(2, BUY, 1, usd(20_990))
    ex.place(3, SELL, 1, usd(21_010))            # mid 21,000: 1,000 above the index
    advance(ex, MINUTE)
    events = oracle(ex, 20_000)
    # EMA history (0, τ): num = 0·90/150 + 1,000·60 s, den = 150 s → ema = 400
    assert events[-1].marks[0] == usd(20_400)
    marks = []
    for _ in range(10):
        advance(ex, MINUTE)
        events = ex.cancel(2, order_id=999)      # any command: the minute tick advances the EMA
        marks += [e.marks[0] for e in events if isinstance(e, MarksUpdated)]
    assert marks == sorted(marks) and usd(20_400) < marks[-1] <= usd(21_000)


def test_one_sided_book_gives_the_index_as_mid():
    ex = _exchange()
    oracle(ex, 20_000)
    ex.place(2, BUY, 1, usd(25_000))
    advance(ex, MINUTE)
    assert oracle(ex, 20_000)[-1].marks[0] == usd(20_000)


def test_snapshot_round_trip_and_replay_keep_the_lifecycle_state():
    ex = _exchange()
    oracle(ex, 20_000)
    ex.place(2, BUY, 1, usd(20_990))
    ex.place(3, SELL, 1, usd(21_010))
    for _ in range(3):
        advance(ex, MINUTE)
        oracle(ex, 20_000)
    advance(ex, 400_000)
    ex.cancel(2, order_id=1)                      # halts
    restored = decode_snapshot(encode_snapshot(ex.state))
    assert state_hash(restored) == ex.hash() == ex.replay_hash()
    assert restored.halted == {"BTC"} and restored.next_timer == ex.state.next_timer


def test_a_version_2_snapshot_without_the_lifecycle_still_loads():
    import msgspec

    ex = _exchange()
    body = msgspec.msgpack.decode(encode_snapshot(ex.state))
    assert body[0] == 4
    old = msgspec.msgpack.encode([2, *body[1:-2]])   # what a version-2 writer produced (no lifecycle, no v4 part)
    restored = decode_snapshot(old)
    assert restored.accounts[2].cash == ex.state.accounts[2].cash
    assert restored.oracle_last == {} and restored.next_timer == 0   # the clock restarts at the next command
