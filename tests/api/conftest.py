"""One API server per test module (a node with BTC-PERP and one BTC option); tests use
their own accounts so that they do not interfere."""

from __future__ import annotations

import pytest

from api_support import Harness


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    yield h
    h.close()
