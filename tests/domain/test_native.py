"""The compiled domain (clearway/native.py, setup.py) against its Python source."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clearway import native

PURE = os.environ.get("CLEARWAY_PURE_PYTHON") == "1"
TESTS = Path(__file__).resolve().parent.parent


def test_the_suite_runs_the_build_it_was_asked_to():
    """Every listed module is the compiled one (the install builds them; a failed build
    must not pass unnoticed), or, under CLEARWAY_PURE_PYTHON=1, the source."""
    modules = [importlib.import_module(name) for name in native.COMPILED_MODULES]
    assert {m.__name__: native.is_compiled(m) for m in modules} == \
        {m.__name__: not PURE for m in modules}


@pytest.mark.skipif(PURE, reason="compares the compiled modules with the source")
def test_compiled_and_source_give_the_same_events_and_state_hash():
    """40,000 commands (native_stream.py: margin-bound accounts, icebergs, good-til-time,
    post-only, fill-or-kill, market, reduce-only and stop orders, amends, cancels, batch
    cancels, cancel-alls) applied here by the compiled modules and in a subprocess by the
    source: every event and the state hash are equal."""
    import native_stream

    import clearway.domain.book as book

    assert native.is_compiled(book), "this side must run the compiled build"
    n = 40_000
    compiled = native_stream.run(n)
    script = ("import sys, json; sys.path[:0] = [sys.argv[1] + '/domain']; "
              "import native_stream, clearway.domain.book as book; "
              "assert book.__file__.endswith('.py'), book.__file__; "
              "print(json.dumps(native_stream.run(int(sys.argv[2]))))")
    env = {**os.environ, "CLEARWAY_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", script, str(TESTS), str(n)], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    source = json.loads(out.stdout)
    kinds = compiled["event_kinds"]
    assert min(kinds["Trade"], kinds["IcebergRefilled"], kinds["OrderTriggered"], kinds["CancelFailed"],
               kinds["OrderAmended"]) > 50, kinds
    assert source == compiled
