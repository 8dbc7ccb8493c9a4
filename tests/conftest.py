"""Shared fixtures (the harness itself lives in tests/support.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


def _check_native_build() -> None:
    """Refuse to test a compiled build that is not the current source's: an extension of a
    module no longer listed in clearway/native.py, or one older than any domain source
    (the compiled code also relies on the types of modules it does not compile, e.g. the
    commands and the state). Under CLEARWAY_PURE_PYTHON=1 the package imports the sources
    instead (clearway/__init__.py) and nothing is checked."""
    from clearway import native

    built = native.extensions_in_package()
    if not built:
        return  # the source alone (tests/domain/test_native.py says whether that was asked for)
    for module, path in built.items():
        if module not in native.EXPECTED_EXTENSIONS:
            pytest.exit(f"{path} is not a listed compiled module: rebuild (make, or pip install "
                        "-e .), which removes it", returncode=4)
    newest = max((_ROOT / "clearway" / "domain").rglob("*.py"), key=lambda p: p.stat().st_mtime)
    oldest = min(built.values(), key=os.path.getmtime)
    if os.path.getmtime(oldest) < newest.stat().st_mtime:
        pytest.exit(f"{os.path.basename(oldest)} is older than {newest.relative_to(_ROOT)}: rebuild "
                    "the compiled domain (make, or pip install -e .) or run with CLEARWAY_PURE_PYTHON=1",
                    returncode=4)


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
