"""The domain modules compiled to C with mypyc, and whether this process runs them so.

The hot path of ``apply`` — order entry, the book and matching, the pre-trade margin
check, fills — is compiled by mypyc (mypy's compiler, https://mypyc.readthedocs.io) when
the package is installed (``make`` / ``pip install -e .``, see setup.py). It is the same
source: mypy type-checks it and mypyc turns its classes into native classes (fixed
attribute slots, no per-instance dict) and its calls between compiled modules into direct
C calls. Integers stay arbitrary-precision Python ints, so every result is identical to
the interpreted source; ``tests/domain/test_native.py`` checks the two against each other
on a long command stream (state hash and every event).

An installation without a C compiler, or with ``CLEARWAY_PURE_PYTHON=1`` set when
installing, runs the source as it is; so does any process started with
``CLEARWAY_PURE_PYTHON=1`` (clearway/__init__.py), whatever is installed. The compiled
code relies on the types of every domain module (the commands, the state), so editing any
of them needs a rebuild: ``make`` does it, and tests/conftest.py refuses to run against an
extension older than a domain source.
"""

from __future__ import annotations

import importlib.machinery

COMPILED_MODULES: tuple[str, ...] = (
    "clearway.domain.orders",
    "clearway.domain.book",
    "clearway.domain.accounts",
    "clearway.domain.fills",
    "clearway.domain.margin",
    "clearway.domain.handlers.common",
    "clearway.domain.handlers.place_order",
    "clearway.domain.handlers.cancel_order",
)
"""Dotted names, in the order mypyc is given them (setup.py reads this file)."""

GROUP_NAME = "clearway.domain.native"
"""mypyc's group: the compiled modules share one library, ``clearway/domain/native__mypyc``."""


def compiled_status() -> dict[str, bool]:
    """Whether each of COMPILED_MODULES runs compiled in this process (imports them)."""
    import importlib

    return {name: is_compiled(importlib.import_module(name)) for name in COMPILED_MODULES}


def is_compiled(module) -> bool:
    """Whether ``module`` (an imported module object) was loaded from a C extension."""
    return (getattr(module, "__file__", None) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
