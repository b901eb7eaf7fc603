"""Pure-Python twin of ``_load.pyx``: the reconstructors a pickle calls for every function.

Pickles never name this module: ``_rebuild`` re-exports whichever twin is active under its own
stable module path.
"""

import builtins
import importlib
import marshal
import sys
import zlib
from types import CellType, CodeType, FunctionType
from typing import Any, Dict, Optional, Tuple, Union

from ._codecheck import CO_HAS_DOCSTRING, FORBIDDEN_OPS, PRELOAD_OPS
from ._codecheck import check_loadable as _check_loadable
from ._codecheck import check_marshal as _check_marshal
from ._corrupt import arity, corrupt, describe, foreign_tag, invalid
from ._deferred import HAS_ANNOTATE as _HAS_ANNOTATE
from ._format import (
    CODE_TAG,
    CODE_TAG_SETS,
    FIELD_ANNOTATIONS,
    FIELD_CELL_VALUES,
    FIELD_EXTRA,
    FIELD_MODULES,
    FROZENSET_MARK,
    MAX_CONST_DEPTH,
    REBUILD_CLOSURE_CELL,
    REBUILD_CODE,
    REBUILD_FILL_CELL,
    REBUILD_FUNCTION,
    REBUILD_MAKE_CELL,
    SLICE_MARK,
    STATE_FIELDS,
)
from ._names import intern_items, intern_keys

# Code objects already unmarshalled, by their bytes: loading the same task function again and
# again (the Ray/Dask pattern) skips marshal. Code objects are immutable, so sharing is safe.
_CODE_CACHE: Dict[bytes, Tuple[Any, CodeType]] = {}
_CODE_CACHE_MAX = 512
# Where the checks have nothing to look for (3.10 and 3.11), skipping their calls saves a tenth
# of a 10,000-function load.
_CHECK_MARSHAL = bool(PRELOAD_OPS)
_CHECK_LOADABLE = bool(FORBIDDEN_OPS) or bool(CO_HAS_DOCSTRING)


def _restored(value: Any, filename: Any, sets: bool, depth: int = 0) -> Any:
    """Undo ``_core_py._portable``: the file name back in, frozensets back from tuples."""
    if depth > MAX_CONST_DEPTH:
        raise _TooDeep
    t = type(value)
    if t is CodeType:
        consts = value.co_consts
        if not (sets or _has_code(consts)):
            # The common case: only the file name goes back in (replace() of one field).
            return value.replace(co_filename=filename) if value.co_filename == "" else value
        consts = tuple([_restored(c, filename, sets, depth + 1) for c in consts])
        if value.co_filename == "":
            return value.replace(co_filename=filename, co_consts=consts)
        return value.replace(co_consts=consts)
    if sets and t is tuple:
        if value and type(value[0]) is str and value[0] == FROZENSET_MARK:
            return frozenset(value[1:])
        if value and type(value[0]) is str and value[0] == SLICE_MARK and len(value) == 4:
            return slice(value[1], value[2], value[3])
        return tuple([_restored(v, filename, True, depth + 1) for v in value])
    return value


class _TooDeep(Exception):
    """Constants nested deeper than MAX_CONST_DEPTH (see there)."""


def _has_code(consts: tuple) -> bool:
    for c in consts:
        if type(c) is CodeType:
            return True
    return False


def code(*args: Any) -> CodeType:
    """Rebuild a code object written by ``marshal`` on the same Python minor version:
    ``code(tag, sealed_bytes, filename)``."""
    if len(args) != 3:
        raise arity(REBUILD_CODE, len(args))
    return _code(REBUILD_CODE, args[0], args[1], args[2])


def _code(who: str, tag: Any, data: Any, filename: Any) -> CodeType:
    if type(tag) is not str:
        raise corrupt(who, "tag", "a str", tag)
    if type(data) is not bytes:
        raise corrupt(who, "code", "bytes", data)
    if type(filename) is not str:
        raise corrupt(who, "filename", "a str", filename)
    cached = _CODE_CACHE.get(data)
    if cached is not None and tag == CODE_TAG and cached[0] == filename:
        return cached[1]
    if tag != CODE_TAG and tag != CODE_TAG_SETS:
        raise foreign_tag(who, tag)
    if len(data) < 5:
        raise invalid(who, "code", "is too short to hold sealed code")
    body = memoryview(data)[4:]
    if zlib.crc32(body) != int.from_bytes(data[:4], "little"):
        raise invalid(who, "code", "fails its checksum (damaged bytes)")
    if _CHECK_MARSHAL:  # 3.12/3.13: some forged bytecode crashes marshal.loads itself
        _check_marshal(body)
    try:
        result = marshal.loads(body)
    except (ValueError, EOFError, TypeError, SystemError) as exc:
        # SystemError: code CPython's own validation refuses while marshal builds it.
        raise invalid(who, "code", f"does not unmarshal: {exc}") from None
    if type(result) is not CodeType:
        raise corrupt(who, "code", "a marshalled code object", result)
    # Before anything reads it: some forged bytecode crashes the interpreter when read.
    if _CHECK_LOADABLE:
        _check_loadable(result)
    try:
        result = _restored(result, filename, tag == CODE_TAG_SETS)
    except (ValueError, TypeError, SystemError) as exc:
        # What code.replace() refuses that the code check lets through (a first line number
        # below 1).
        raise invalid(who, "code", f"was refused by CPython: {exc}") from None
    except _TooDeep:
        raise invalid(who, "code", f"nests constants deeper than {MAX_CONST_DEPTH} levels, "
                      f"which no compiled source does") from None
    if tag == CODE_TAG:
        if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
            _CODE_CACHE.clear()
        _CODE_CACHE[data] = (filename, result)
    return result


def make_cell(*args: Any) -> CellType:
    """An empty cell; :func:`fill_cell` fills it."""
    if args:
        raise arity(REBUILD_MAKE_CELL, len(args))
    return CellType()


def fill_cell(*args: Any) -> CellType:
    """State setter of a standalone cell: ``fill_cell(cell, (value,))``."""
    if len(args) != 2:
        raise arity(REBUILD_FILL_CELL, len(args))
    cell, state = args
    if type(cell) is not CellType:
        raise corrupt(REBUILD_FILL_CELL, "cell", "a cell", cell)
    if type(state) is not tuple or len(state) != 1:
        raise corrupt(REBUILD_FILL_CELL, "state", "a 1-tuple", state)
    cell.cell_contents = state[0]
    return cell


def closure_cell(*args: Any) -> CellType:
    """A cell shared with a function rebuilt earlier in the same pickle:
    ``closure_cell(function, index)``."""
    if len(args) != 2:
        raise arity(REBUILD_CLOSURE_CELL, len(args))
    func, index = args
    if type(func) is not FunctionType:
        raise corrupt(REBUILD_CLOSURE_CELL, "function", "a function", func)
    if type(index) is not int:
        raise corrupt(REBUILD_CLOSURE_CELL, "index", "an int", index)
    closure = func.__closure__
    n = 0 if closure is None else len(closure)
    if not 0 <= index < n:
        raise invalid(REBUILD_CLOSURE_CELL, "index",
                      f"({describe(index)}) is out of range for a function with {n} cells")
    return closure[index]  # type: ignore[index]


def function(*args: Any) -> FunctionType:
    """Create a function, or fill one in.

    ``function(tag, code_bytes, filename, globals, closure)`` makes the function;
    ``function(func, state)`` is its state setter. One callable serves both so a pickle
    references a single global per function kind: looking a global up costs more than the
    rest of a small lambda's pickle.
    """
    n = len(args)
    if n == 2:
        func = args[0]
        if type(func) is not FunctionType:
            raise corrupt(REBUILD_FUNCTION, "function", "a function", func)
        _check_state(func, args[1])
        try:
            return _set_state(func, args[1])
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
            # What the checks above cannot see (a value CPython's setters refuse).
            raise invalid(REBUILD_FUNCTION, "state",
                          f"was refused: {type(exc).__name__}: {exc}") from None
    if n == 5:
        return _make(args[0], args[1], args[2], args[3], args[4])
    raise arity(REBUILD_FUNCTION, n)


def _make(tag: str, data: bytes, filename: Any, globals_: Dict[str, Any],
          closure: Union[None, int, tuple]) -> FunctionType:
    co = _code(REBUILD_FUNCTION, tag, data, filename)
    if type(globals_) is not dict:
        raise corrupt(REBUILD_FUNCTION, "globals", "a dict", globals_)
    cells: Optional[tuple] = None
    if closure is not None:
        nfree = len(co.co_freevars)
        if type(closure) is int:
            if closure != nfree or closure == 0:
                raise invalid(REBUILD_FUNCTION, "closure",
                              f"({describe(closure)}) is not the {nfree} cells the code needs")
            cells = tuple([CellType() for _ in range(closure)])
        elif type(closure) is tuple:
            if len(closure) != nfree or nfree == 0:
                raise invalid(REBUILD_FUNCTION, "closure",
                              f"({describe(closure)}) is not the {nfree} cells the code needs")
            for c in closure:
                if c is not None and type(c) is not CellType:
                    raise corrupt(REBUILD_FUNCTION, "closure", "a tuple of cells and Nones",
                                  c)
            cells = tuple([CellType() if c is None else c for c in closure])
        else:
            raise corrupt(REBUILD_FUNCTION, "closure", "None, a cell count or a tuple of cells",
                          closure)
    if "__builtins__" not in globals_:
        globals_["__builtins__"] = builtins
    try:
        return FunctionType(co, globals_, None, None, cells)
    except (TypeError, ValueError) as exc:
        raise invalid(REBUILD_FUNCTION, "code", f"was refused: {exc}") from None


_NONES = (None,) * 13
# Names interned as the defining process has them (see _names.intern_keys).
_intern = sys.intern


def _import(name: str) -> Any:
    """The module ``name``, imported if it is not yet."""
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)


def _field(name: str) -> str:
    return f"state field {name!r}"


def _check_state(func: FunctionType, state: Any) -> None:
    """Refuse a function state that no pickler of ours writes, before any of it is applied:
    each field has one type (``_format.STATE_FIELDS``), boxed fields are 1-tuples."""
    if type(state) is not tuple or len(state) > 13:
        raise corrupt(REBUILD_FUNCTION, "state", "a tuple of at most 13 fields", state)
    n = len(state)
    i = 0
    for value in state:
        kind = _FIELD_TYPES[i]
        if value is not None and kind is not None:
            if kind == "1-tuple":
                if type(value) is not tuple or len(value) != 1:
                    raise corrupt(REBUILD_FUNCTION, _field(STATE_FIELDS[i]), "a 1-tuple", value)
            elif type(value) is not kind:
                raise corrupt(REBUILD_FUNCTION, _field(STATE_FIELDS[i]),
                              f"a {kind.__name__}", value)
        i += 1
    # Then what needs more than a type.
    if n > 2 and state[2] is not None:
        closure = func.__closure__
        cells = 0 if closure is None else len(closure)
        if cells != len(state[2]):
            raise invalid(REBUILD_FUNCTION, _field(FIELD_CELL_VALUES),
                          f"holds {len(state[2])} values for a function with {cells} cells")
    if n > 1 and state[1] is not None:
        for module_name in state[1].values():
            if type(module_name) is not str:
                raise corrupt(REBUILD_FUNCTION, _field(FIELD_MODULES),
                              "a dict of module names", module_name)
    if n > 10 and state[10] is not None and type(state[10]) is not dict and not (
            _HAS_ANNOTATE and callable(state[10])):
        raise corrupt(REBUILD_FUNCTION, _field(FIELD_ANNOTATIONS), _ANNOTATIONS, state[10])
    if n > 12 and state[12] is not None:
        extra = state[12]
        if type(extra) is not tuple or len(extra) != 2:
            raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA), "a 2-tuple", extra)
        if extra[0] is not None and type(extra[0]) is not tuple:
            raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA), "type parameters in a tuple",
                          extra[0])
        if extra[1] is not None:
            if type(extra[1]) is not tuple:
                raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA),
                              "submodule names in a tuple", extra[1])
            for module_name in extra[1]:
                if type(module_name) is not str:
                    raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA),
                                  "submodule names in a tuple", module_name)


# The one type each field of STATE_FIELDS has when set (None: checked apart). Boxed fields
# (a value that may itself be None) are 1-tuples.
_FIELD_TYPES: Tuple[Any, ...] = (dict, dict, tuple, tuple, "1-tuple", tuple, dict, str, str,
                                 "1-tuple", None, dict, None)
_ANNOTATIONS = "a dict or an annotate function" if _HAS_ANNOTATE else "a dict"


def _set_state(func: FunctionType, state: tuple) -> FunctionType:
    """Apply everything a function carries beyond its code, globals and cells.

    ``state`` is laid out as ``_format.STATE_FIELDS``, trailing Nones dropped, and was checked
    by :func:`_check_state`.
    """
    (captured, modules, cell_values, defaults, doc, empty_cells, kwdefaults, qualname, name,
     module, annotations, attrs, extra) = state + _NONES[len(state):]
    if captured is not None:
        func.__globals__.update(captured)
    if modules is not None:
        g = func.__globals__
        for key, module_name in modules.items():
            g[key] = _import(module_name)
    if defaults is not None:
        func.__defaults__ = defaults
    if kwdefaults is not None:
        func.__kwdefaults__ = kwdefaults
    if cell_values is not None:
        closure = func.__closure__
        i = 0
        for value in cell_values:
            if empty_cells is None or i not in empty_cells:
                if type(value) is list:
                    intern_items(value)  # 3.14 dataclass __annotate__ cells: field names
                closure[i].cell_contents = value  # type: ignore[index]
            i += 1
    if name is not None:
        func.__name__ = _intern(name)
    if qualname is not None:
        func.__qualname__ = _intern(qualname)
    if module is not None:
        # Interned like a class's __module__ (3.14 dataclass reprs copy it onto a wrapper).
        func.__module__ = _intern(module[0]) if type(module[0]) is str else module[0]
    if doc is not None:
        func.__doc__ = doc[0]
    if annotations is not None:
        if type(annotations) is dict:
            intern_keys(annotations)
            func.__annotations__ = annotations
        else:  # 3.14+: the function that computes them (see _deferred.py)
            func.__annotate__ = annotations  # type: ignore[attr-defined]
    if attrs is not None:
        func.__dict__.update(attrs)
    if extra is not None:
        type_params, submodules = extra
        if type_params is not None:
            func.__type_params__ = type_params  # type: ignore[attr-defined]  # 3.12+
        for module_name in submodules or ():
            _import(module_name)
    return func
