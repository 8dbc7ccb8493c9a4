"""Fixtures for the engine tests (helpers in engine_support.py)."""

from __future__ import annotations

import uuid

import pytest

from clearway.engine.loadgen import bench_genesis, command_stream, take
from engine_support import PG_URL, Backend


@pytest.fixture
def genesis():
    return bench_genesis()


@pytest.fixture
def commands():
    """400 commands of the synthetic mix (100 deposits, a mark price, orders, cancels)."""
    return take(command_stream(seed=7), 400)


def _backends():
    yield "sqlite"
    yield pytest.param("postgresql", marks=pytest.mark.skipif(
        not PG_URL, reason="set CLEARWAY_TEST_PG_URL (bash .ci/postgres.sh prints one)"))


@pytest.fixture(params=list(_backends()))
def backend(request, tmp_path):
    if request.param == "sqlite":
        yield Backend("sqlite", tmp_path / "node")
        return
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:16]
    yield Backend("postgresql", tmp_path / "node", schema)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
