"""Shared fixtures (the harness itself lives in tests/support.py)."""

from __future__ import annotations

import pytest

from support import Exchange, funded_exchange


@pytest.fixture
def exchange() -> Exchange:
    """See ``support.funded_exchange``."""
    return funded_exchange()
