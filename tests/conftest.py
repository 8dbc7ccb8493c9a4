"""Shared fixtures (the harness itself lives in tests/support.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


def _check_native_build() -> None:
    """Refuse to test a compiled domain module older than its source (an edit not yet
    rebuilt: the extension, not the edited source, would be imported). Under
    CLEARWAY_PURE_PYTHON=1 the package imports the sources instead (clearway/__init__.py)."""
    namespace: dict = {}
    exec((_ROOT / "clearway" / "domain" / "native.py").read_text(), namespace)
    for name in namespace["COMPILED_MODULES"]:
        source = _ROOT.joinpath(*name.split(".")).with_suffix(".py")
        for built in source.parent.glob(source.stem + ".*.so"):
            if built.stat().st_mtime < source.stat().st_mtime:
                raise pytest.UsageError(
                    f"{built.name} is older than {source.name}: rebuild the compiled domain "
                    "(make, or pip install -e .) or run with CLEARWAY_PURE_PYTHON=1")


if os.environ.get("CLEARWAY_PURE_PYTHON") != "1":
    _check_native_build()

# Node journals in tests skip the WAL preallocation (16 MiB written per node opened);
# tests/engine/test_batching.py checks it explicitly.
os.environ.setdefault("CLEARWAY_WAL_PREALLOCATE_MB", "0")

from support import Exchange, funded_exchange


@pytest.fixture
def exchange() -> Exchange:
    """See ``support.funded_exchange``."""
    return funded_exchange()
