"""Clearway: an off-chain clearing and settlement layer for crypto derivatives.

CLEARWAY_PURE_PYTHON=1 in the environment makes this process import the domain modules
that mypyc compiles (clearway/domain/native.py) from their Python source even where the
compiled build is installed: for a debugger, coverage, or comparing the two.
"""

import os as _os

if _os.environ.get("CLEARWAY_PURE_PYTHON") == "1":
    import importlib.abc as _abc
    import importlib.util as _util
    import runpy as _runpy
    import sys as _sys

    _PACKAGE_DIR = _os.path.dirname(_os.path.abspath(__file__))

    class _SourceOnly(_abc.MetaPathFinder):
        """Finds the compiled modules' ``.py`` source ahead of their extension."""

        names = frozenset(_runpy.run_path(_os.path.join(_PACKAGE_DIR, "domain", "native.py"))["COMPILED_MODULES"])

        def find_spec(self, fullname, path, target=None):
            if fullname not in self.names:
                return None
            parts = fullname.split(".")[1:]
            return _util.spec_from_file_location(fullname, _os.path.join(_PACKAGE_DIR, *parts) + ".py")

    _sys.meta_path.insert(0, _SourceOnly())
