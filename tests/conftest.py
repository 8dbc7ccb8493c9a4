"""Shared fixtures (the harness itself lives in tests/support.py)."""

from __future__ import annotations

import os

import pytest

# Node journals in tests skip the WAL preallocation (16 MiB written per node opened);
# tests/engine/test_batching.py checks it explicitly.
os.environ.setdefault("CLEARWAY_WAL_PREALLOCATE_MB", "0")

from support import Exchange, funded_exchange


@pytest.fixture
def exchange() -> Exchange:
    """See ``support.funded_exchange``."""
    return funded_exchange()
