"""Clearway: an off-chain clearing and settlement layer for crypto derivatives.

CLEARWAY_PURE_PYTHON=1 in the environment makes this process import every module that has
a compiled extension in the package (the domain modules mypyc compiles, clearway/native.py)
from its Python source instead: for a debugger, coverage, or comparing the two.
"""

import os as _os

if _os.environ.get("CLEARWAY_PURE_PYTHON") == "1":
    import importlib.abc as _abc
    import importlib.util as _util
    import sys as _sys

    from clearway.native import extensions_in_package as _extensions_in_package

    _ROOT = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))  # holds clearway/

    class _SourceOnly(_abc.MetaPathFinder):
        """Finds the ``.py`` source of a module ahead of its extension."""

        sources = {module: _os.path.join(_ROOT, *module.split(".")) + ".py" for module in _extensions_in_package()}

        def find_spec(self, fullname, path, target=None):
            source = self.sources.get(fullname)
            if source is None or not _os.path.exists(source):
                return None
            return _util.spec_from_file_location(fullname, source)

    _sys.meta_path.insert(0, _SourceOnly())
