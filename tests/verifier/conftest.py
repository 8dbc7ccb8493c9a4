"""Shared fixture of the verifier tests."""

from __future__ import annotations

import pytest
from verifier_harness import scenario


@pytest.fixture
def honest(tmp_path):
    """A drill scenario after its honest prefix (two finalised batches)."""
    s = scenario(tmp_path)
    s.honest_prefix()
    yield s
    s.close()
