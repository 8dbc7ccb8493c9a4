"""Fixtures of the domain tests (the harness is tests/support.py)."""

from __future__ import annotations

import pytest

from support import Exchange, funded_exchange, usd


@pytest.fixture
def ex() -> Exchange:
    """``support.funded_exchange`` (accounts 2 and 3) with two more funded traders, 4 and
    5 (1,000,000 USDC each)."""
    e = funded_exchange()
    e.deposit(0xC3, usd(1_000_000))
    e.deposit(0xD4, usd(1_000_000))
    return e
