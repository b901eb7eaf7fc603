"""Per-version opcode numbers the bytecode scanners need (shared by both twins)."""

import opcode
import sys

from . import _codecheck

_op = opcode.opmap

EXTENDED_ARG: int = _op["EXTENDED_ARG"]
LOAD_GLOBAL: int = _op["LOAD_GLOBAL"]
STORE_GLOBAL: int = _op["STORE_GLOBAL"]
DELETE_GLOBAL: int = _op["DELETE_GLOBAL"]
LOAD_NAME: int = _op["LOAD_NAME"]
LOAD_ATTR: int = _op["LOAD_ATTR"]
# Missing opcodes get -1, which no instruction has.
LOAD_METHOD: int = _op.get("LOAD_METHOD", -1)
LOAD_FROM_DICT_OR_GLOBALS: int = _op.get("LOAD_FROM_DICT_OR_GLOBALS", -1)
CACHE: int = _op.get("CACHE", -1)

# CACHE units after each opcode (3.11+; all 0 before), as ``dis`` skips them: a scanner may
# jump over them instead of reading each one. The load-side guard counts them already.
CACHE_ENTRIES: bytes = _codecheck.CACHE_SIZES

# 3.11+: LOAD_GLOBAL's oparg is ``namei << 1 | push_null``; 3.12+: LOAD_ATTR's is
# ``namei << 1 | is_method``.
LOAD_GLOBAL_SHIFT: int = 1 if sys.version_info >= (3, 11) else 0
LOAD_ATTR_SHIFT: int = 1 if sys.version_info >= (3, 12) else 0

# Roots of attribute chains besides globals, for submodules reached through closure cells and
# parameter defaults (``xml.etree.ElementTree`` with ``xml`` in a cell or a default).
LOAD_FAST: int = _op["LOAD_FAST"]
LOAD_DEREF: int = _op["LOAD_DEREF"]
# 3.12+: LOAD_FAST when the local may be unbound.
LOAD_FAST_CHECK: int = _op.get("LOAD_FAST_CHECK", -1)
# 3.14+: LOAD_FAST without a new reference.
LOAD_FAST_BORROW: int = _op.get("LOAD_FAST_BORROW", -1)
# 3.13+: two locals in one instruction, oparg ``first << 4 | second``; the second is on top.
LOAD_FAST_LOAD_FAST: int = _op.get("LOAD_FAST_LOAD_FAST", -1)
LOAD_FAST_BORROW_LOAD_FAST_BORROW: int = _op.get("LOAD_FAST_BORROW_LOAD_FAST_BORROW", -1)
# Class bodies reading a cell (3.10-3.11 / 3.12+).
LOAD_CLASSDEREF: int = _op.get("LOAD_CLASSDEREF", -1)
LOAD_FROM_DICT_OR_DEREF: int = _op.get("LOAD_FROM_DICT_OR_DEREF", -1)

# Head kinds of local chains (``CodeInfo.chains`` entries whose head is ``(kind, name)``; a
# global's head is its name): a local of the outermost code object, or a cell variable.
HEAD_FAST: int = 0
HEAD_DEREF: int = 1

if sys.version_info >= (3, 11):
    def deref_name(code, arg: int) -> str:
        """The name a LOAD_DEREF-family oparg refers to (an index into all the locals)."""
        return code._varname_from_oparg(arg)
else:
    def deref_name(code, arg: int) -> str:
        """The name a LOAD_DEREF-family oparg refers to (cell variables, then free ones)."""
        names = code.co_cellvars + code.co_freevars
        if arg >= len(names):
            raise IndexError(f"cell #{arg} out of range")
        return names[arg]
