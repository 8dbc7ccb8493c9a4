"""Build of the compiled domain modules (clearway/domain/native.py lists them): mypyc turns
them into C extensions that sit beside their sources (an editable install builds them in
place). Everything else about the package is in pyproject.toml.

CLEARWAY_PURE_PYTHON=1 skips the build, and a failed one (no C compiler) is skipped with a
warning: the package then runs the Python source alone."""

import os
import runpy

from setuptools import setup

ext_modules = []
if os.environ.get("CLEARWAY_PURE_PYTHON") != "1":
    from mypyc.build import mypycify

    native = runpy.run_path(os.path.join("clearway", "domain", "native.py"))
    paths = [name.replace(".", os.sep) + ".py" for name in native["COMPILED_MODULES"]]
    ext_modules = mypycify(paths, opt_level="3", group_name=native["GROUP_NAME"])
    for extension in ext_modules:
        # no C compiler: install the source alone (tests/domain/test_native.py fails loudly
        # where the compiled build was expected)
        extension.optional = True

setup(ext_modules=ext_modules)
