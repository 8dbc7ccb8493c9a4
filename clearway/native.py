"""The domain modules compiled to C with mypyc, and finding compiled extensions.

The hot path of ``apply`` — ``apply`` itself and the state, order entry, the book and
matching, the pre-trade margin check, fills, exact products (arith.py) — is compiled by
mypyc (mypy's compiler, https://mypyc.readthedocs.io) when the package is installed
(``make`` / ``pip install -e .``, see setup.py). It is the same source: mypy type-checks it
and mypyc turns its classes into native classes (fixed attribute slots, no per-instance
dict) and its calls between compiled modules into direct C calls. Integers stay
arbitrary-precision Python ints, so every result of well-typed input is the source's;
``tests/domain/test_native.py`` checks the two against each other on a long command
stream (state hash and every event). The events' fields are annotated
with the NewTypes of ids.py / units.py while the handlers pass plain ints, which mypy
flags: those calls carry ``# type: ignore[arg-type]`` (no change of representation).

An installation without a C compiler, or with ``CLEARWAY_PURE_PYTHON=1`` set when
installing, runs the source as it is; so does any process started with
``CLEARWAY_PURE_PYTHON=1`` (clearway/__init__.py), whatever is installed. The compiled
code relies on the types of every domain module (the commands, the state), so editing any
of them needs a rebuild: ``make`` does it, and tests/conftest.py refuses to run against an
extension older than a domain source.

This module sits outside the domain (it looks at files) and imports only the standard
library: setup.py runs it before anything is installed, and clearway/__init__.py imports
it first thing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os

COMPILED_MODULES: tuple[str, ...] = (
    "clearway.domain.arith",
    "clearway.domain.orders",
    "clearway.domain.book",
    "clearway.domain.accounts",
    "clearway.domain.fills",
    "clearway.domain.margin",
    "clearway.domain.handlers.common",
    "clearway.domain.handlers.place_order",
    "clearway.domain.handlers.cancel_order",
    "clearway.domain.state",
)
"""Dotted names, in the order mypyc is given them (setup.py)."""

GROUP_NAME = "clearway.domain.native"
"""mypyc's group: the compiled modules share one library, ``clearway/domain/native__mypyc``."""

EXPECTED_EXTENSIONS = frozenset({*COMPILED_MODULES, GROUP_NAME + "__mypyc"})
"""Every extension module a build of COMPILED_MODULES leaves in the package."""

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def extensions_in_package() -> dict[str, str]:
    """Module name → file of every C extension in the clearway package directory (an
    editable install builds them beside their sources)."""
    found = {}
    root = os.path.dirname(_PACKAGE_DIR)
    for directory, _, files in os.walk(_PACKAGE_DIR):
        for name in files:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if name.endswith(suffix):
                    path = os.path.join(directory, name)
                    module = os.path.relpath(path, root)[: -len(suffix)].replace(os.sep, ".")
                    found[module] = path
                    break
    return found


def is_compiled(module) -> bool:
    """Whether ``module`` (an imported module object) was loaded from a C extension."""
    return (getattr(module, "__file__", None) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_status() -> dict[str, bool]:
    """Whether each of COMPILED_MODULES runs compiled in this process (imports them)."""
    return {name: is_compiled(importlib.import_module(name)) for name in COMPILED_MODULES}
