"""Shared fixtures (the harness itself lives in tests/support.py)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


def _native_modules() -> tuple[str, ...]:
    namespace: dict = {}
    exec((_ROOT / "clearway" / "domain" / "native.py").read_text(), namespace)
    return namespace["COMPILED_MODULES"]


class _SourceOnly(importlib.abc.MetaPathFinder):
    """Loads the compiled domain modules from their Python source (CLEARWAY_PURE_PYTHON=1):
    the suite then tests the interpreted domain, which an install without a C compiler
    runs."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        source = _ROOT.joinpath(*fullname.split(".")).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, source)


def _check_native_build(names: tuple[str, ...]) -> None:
    """Refuse to test a compiled module older than its source (an edit not yet rebuilt:
    the extension, not the edited source, would be imported)."""
    for name in names:
        source = _ROOT.joinpath(*name.split(".")).with_suffix(".py")
        for built in source.parent.glob(source.stem + ".*.so"):
            if built.stat().st_mtime < source.stat().st_mtime:
                raise pytest.UsageError(
                    f"{built.name} is older than {source.name}: rebuild the compiled domain "
                    "(make, or pip install -e .) or run with CLEARWAY_PURE_PYTHON=1")


if os.environ.get("CLEARWAY_PURE_PYTHON") == "1":
    sys.meta_path.insert(0, _SourceOnly(_native_modules()))
else:
    _check_native_build(_native_modules())

# Node journals in tests skip the WAL preallocation (16 MiB written per node opened);
# tests/engine/test_batching.py checks it explicitly.
os.environ.setdefault("CLEARWAY_WAL_PREALLOCATE_MB", "0")

from support import Exchange, funded_exchange


@pytest.fixture
def exchange() -> Exchange:
    """See ``support.funded_exchange``."""
    return funded_exchange()
