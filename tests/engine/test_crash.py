"""A real node process killed with SIGKILL under load keeps every acknowledged command.

The benchmark (bench/node.py) does the same with twenty kills or more."""

from __future__ import annotations

import pytest

from clearway.engine.crashtest import crash_test

from engine_support import PG_URL


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="set CLEARWAY_TEST_PG_URL"))])
def test_a_node_killed_three_times_under_load_loses_no_acknowledged_command(tmp_path, kind):
    schema = "crash_" + tmp_path.name.replace("-", "_").lower()[-40:]
    findings = crash_test(tmp_path / "node", kills=3, seed=11, snapshot_every=1_000,
                          journal_url=PG_URL if kind == "postgresql" else None, pg_schema=schema)
    try:
        assert findings["crash_cycles"] == 3
        assert findings["acknowledged"] > 101
        assert findings["acknowledged_lost"] == 0
        assert findings["state_hash_match"] is True
    finally:
        if kind == "postgresql":
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
