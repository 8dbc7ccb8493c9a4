"""LOBSTER replay on the real AAPL sample: every book row and every FIFO check must match."""

from __future__ import annotations

from pathlib import Path


from clearway.domain.book import OrderBook
from clearway.sim.lobster import replay_directory

LOBSTER = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster"


def test_replay_of_real_aapl_flow_matches_every_row_and_every_fifo_check():
    result = replay_directory(LOBSTER)
    assert result.rows == 998
    assert result.rows_matched == 998
    assert result.fifo_checks == 98
    assert result.fifo_ok == 98


def test_a_lifo_book_fails_the_fifo_checks(monkeypatch):
    """The check can fail: a book that queues new orders in front breaks time priority."""
    original_add = OrderBook.add

    def lifo_add(self, order):
        original_add(self, order)
        level = order.level
        if level.head is not order:  # move the new order to the front of its level
            order.prev.next = None
            level.tail = order.prev
            order.prev, order.next = None, level.head
            level.head.prev = order
            level.head = order

    monkeypatch.setattr(OrderBook, "add", lifo_add)
    result = replay_directory(LOBSTER)
    assert result.fifo_ok < result.fifo_checks


def test_cli_prints_the_named_json_keys(capsys):
    import json

    from clearway.cli import main
    assert main(["lobster-replay", str(LOBSTER), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"rows", "rows_matched", "fifo_checks", "fifo_ok"} <= set(out)
