"""Build of the compiled domain modules (clearway/native.py lists them): mypyc turns them
into C extensions that sit beside their sources (an editable install builds them in
place). Everything else about the package is in pyproject.toml.

Extensions left in the tree from an earlier build, of modules no longer listed (or of all
of them, when nothing is built), are deleted first: an extension is imported ahead of its
``.py``. CLEARWAY_PURE_PYTHON=1 builds nothing; a build that fails (no C compiler, no
Python headers) is reported on standard error and installs the Python source alone, all
or nothing (tests/domain/test_native.py then fails where the compiled build was expected)."""

import os
import runpy
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

native = runpy.run_path(os.path.join("clearway", "native.py"))  # standard library only
keep: frozenset = frozenset()
ext_modules = []
if os.environ.get("CLEARWAY_PURE_PYTHON") != "1":
    from mypyc.build import mypycify

    paths = [name.replace(".", os.sep) + ".py" for name in native["COMPILED_MODULES"]]
    ext_modules = mypycify(paths, opt_level="3", group_name=native["GROUP_NAME"])
    keep = native["EXPECTED_EXTENSIONS"]

for module, path in native["extensions_in_package"]().items():
    if module not in keep:
        os.remove(path)


class AllOrNothing(build_ext):
    """Build every extension or none: a partial build (the shared group library failed but
    a module's small shim did not) would leave modules that cannot be imported."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a compiler error, a missing compiler or header
            for path in native["extensions_in_package"]().values():
                os.remove(path)
            sys.stderr.write(f"\n*** clearway: the compiled domain was not built ({exc}); "
                             "the Python source will run instead (slower).\n\n")


setup(ext_modules=ext_modules, cmdclass={"build_ext": AllOrNothing})
