"""Per-version opcode numbers the bytecode scanners need (shared by both twins)."""

import opcode
import sys

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

# 3.11+: LOAD_GLOBAL's oparg is ``namei << 1 | push_null``; 3.12+: LOAD_ATTR's is
# ``namei << 1 | is_method``.
LOAD_GLOBAL_SHIFT: int = 1 if sys.version_info >= (3, 11) else 0
LOAD_ATTR_SHIFT: int = 1 if sys.version_info >= (3, 12) else 0
