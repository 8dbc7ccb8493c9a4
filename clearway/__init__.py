"""Clearway: an off-chain clearing and settlement layer for crypto derivatives.

CLEARWAY_PURE_PYTHON=1 in the environment makes this process import every module that has
a compiled extension in the package (the domain modules mypyc compiles, see
clearway/domain/native.py) from its Python source instead: for a debugger, coverage, or
comparing the two.
"""

import os as _os

if _os.environ.get("CLEARWAY_PURE_PYTHON") == "1":
    import importlib.abc as _abc
    import importlib.machinery as _machinery
    import importlib.util as _util
    import sys as _sys

    _PACKAGE_DIR = _os.path.dirname(_os.path.abspath(__file__))

    def _sources_shadowed_by_extensions() -> dict[str, str]:
        """Module name → its ``.py``, for every extension in the package that has one."""
        found = {}
        for directory, _, files in _os.walk(_PACKAGE_DIR):
            for name in files:
                for suffix in _machinery.EXTENSION_SUFFIXES:
                    if name.endswith(suffix):
                        source = _os.path.join(directory, name[: -len(suffix)] + ".py")
                        if _os.path.exists(source):
                            relative = _os.path.relpath(source, _os.path.dirname(_PACKAGE_DIR))
                            found[relative[:-3].replace(_os.sep, ".")] = source
        return found

    class _SourceOnly(_abc.MetaPathFinder):
        """Finds those modules' ``.py`` source ahead of their extension."""

        sources = _sources_shadowed_by_extensions()

        def find_spec(self, fullname, path, target=None):
            source = self.sources.get(fullname)
            return None if source is None else _util.spec_from_file_location(fullname, source)

    _sys.meta_path.insert(0, _SourceOnly())
