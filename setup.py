"""Build the compiled core when possible.

Modes (same truth rule as the package: only 1/true/yes/on count as set):
- default: try to cythonize and compile; on failure print a loud warning and install the
  pure-Python twin only;
- FASTFNPICKLE_NO_EXTENSIONS=1: do not try;
- FASTFNPICKLE_REQUIRE_EXTENSIONS=1: a build failure is fatal (CI uses this).
"""

import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "_fastfnpickle_env", os.path.join(HERE, "src", "fastfnpickle", "_env.py")
)
_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_env)

NO_EXT = _env.env_flag("FASTFNPICKLE_NO_EXTENSIONS")
REQUIRE_EXT = _env.env_flag("FASTFNPICKLE_REQUIRE_EXTENSIONS")
CORE_MODULES = ["_core", "_load"]


def _warn(msg):
    bar = "*" * 78
    sys.stderr.write(f"\n{bar}\n{msg}\n{bar}\n\n")


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure-Python twin unless the build is required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, Cython error, ...
            if REQUIRE_EXT:
                raise
            _warn(f"fastfnpickle: could not build the compiled core ({exc!r}); "
                  "installing the pure-Python implementation only (slower).")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_EXT:
                raise
            _warn(f"fastfnpickle: could not compile {ext.name} ({exc!r}); "
                  "installing the pure-Python implementation only (slower).")


def _extensions():
    if NO_EXT:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXT:
            raise
        _warn(f"fastfnpickle: Cython is not available ({exc!r}); "
              "installing the pure-Python implementation only (slower).")
        return []
    from setuptools import Extension

    exts = [
        Extension(f"fastfnpickle.{name}", [f"src/fastfnpickle/{name}.pyx"])
        for name in CORE_MODULES
    ]
    try:
        return cythonize(
            exts,
            compiler_directives={"language_level": "3", "binding": True, "embedsignature": True},
        )
    except Exception as exc:
        if REQUIRE_EXT:
            raise
        _warn(f"fastfnpickle: cythonize failed ({exc!r}); "
              "installing the pure-Python implementation only (slower).")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
