"""Shared fixtures (the harness itself lives in tests/support.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


def _check_native_build() -> None:
    """Refuse to test a compiled build that is not the current source's: an extension of a
    module no longer listed in clearway/domain/native.py, or one older than any domain
    source (the compiled code also relies on the types of modules it does not compile,
    e.g. the commands and the state). Under CLEARWAY_PURE_PYTHON=1 the package imports the
    sources instead (clearway/__init__.py) and nothing is checked."""
    namespace: dict = {}
    exec((_ROOT / "clearway" / "domain" / "native.py").read_text(), namespace)
    expected = {*namespace["COMPILED_MODULES"], namespace["GROUP_NAME"] + "__mypyc"}
    built = list((_ROOT / "clearway").rglob("*.so"))
    if not built:
        return  # the source alone (tests/domain/test_native.py says whether that was asked for)
    for path in built:
        module = ".".join(path.relative_to(_ROOT).with_suffix("").with_suffix("").parts)
        if module not in expected:
            pytest.exit(f"{path.relative_to(_ROOT)} is not a listed compiled module: rebuild "
                        "(make, or pip install -e .), which removes it", returncode=4)
    newest = max((_ROOT / "clearway" / "domain").rglob("*.py"), key=lambda p: p.stat().st_mtime)
    oldest = min(built, key=lambda p: p.stat().st_mtime)
    if oldest.stat().st_mtime < newest.stat().st_mtime:
        pytest.exit(f"{oldest.name} is older than {newest.relative_to(_ROOT)}: rebuild the compiled "
                    "domain (make, or pip install -e .) or run with CLEARWAY_PURE_PYTHON=1", returncode=4)


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
