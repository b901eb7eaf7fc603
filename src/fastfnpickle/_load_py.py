"""Pure-Python twin of ``_load.pyx``: the reconstructors a pickle calls for every function.

Pickles never name this module: ``_rebuild`` re-exports whichever twin is active under its own
stable module path.
"""

import builtins
import importlib
import marshal
import sys
from pickle import UnpicklingError
from types import CellType, CodeType, FunctionType
from typing import Any, Dict, Optional, Tuple, Union

from ._codecheck import CO_HAS_DOCSTRING, FORBIDDEN_OPS, PRELOAD_OPS
from ._codecheck import check_loadable as _check_loadable
from ._codecheck import check_marshal as _check_marshal
from ._deferred import HAS_ANNOTATE as _HAS_ANNOTATE
from ._format import CODE_TAG, CODE_TAG_SETS, FROZENSET_MARK, SLICE_MARK, unseal
from ._names import intern_items, intern_keys

# Code objects already unmarshalled, by their bytes: loading the same task function again and
# again (the Ray/Dask pattern) skips marshal. Code objects are immutable, so sharing is safe.
_CODE_CACHE: Dict[bytes, Tuple[Any, CodeType]] = {}
_CODE_CACHE_MAX = 512
# Where the checks have nothing to look for (3.10 and 3.11), skipping their calls saves a tenth
# of a 10,000-function load.
_CHECK_MARSHAL = bool(PRELOAD_OPS)
_CHECK_LOADABLE = bool(FORBIDDEN_OPS) or bool(CO_HAS_DOCSTRING)


def _restored(value: Any, filename: Any, sets: bool) -> Any:
    """Undo ``_core_py._portable``: the file name back in, frozensets back from tuples."""
    t = type(value)
    if t is CodeType:
        consts = value.co_consts
        if not (sets or _has_code(consts)):
            # The common case: only the file name goes back in (replace() of one field).
            return value.replace(co_filename=filename) if value.co_filename == "" else value
        consts = tuple([_restored(c, filename, sets) for c in consts])
        if value.co_filename == "":
            return value.replace(co_filename=filename, co_consts=consts)
        return value.replace(co_consts=consts)
    if sets and t is tuple:
        if value and type(value[0]) is str and value[0] == FROZENSET_MARK:
            return frozenset(value[1:])
        if value and type(value[0]) is str and value[0] == SLICE_MARK and len(value) == 4:
            return slice(value[1], value[2], value[3])
        return tuple([_restored(v, filename, True) for v in value])
    return value


def _has_code(consts: tuple) -> bool:
    for c in consts:
        if type(c) is CodeType:
            return True
    return False


def code(tag: str, data: bytes, filename: Any) -> CodeType:
    """Rebuild a code object written by ``marshal`` on the same Python minor version."""
    cached = _CODE_CACHE.get(data) if type(data) is bytes else None
    if cached is not None and tag == CODE_TAG and cached[0] == filename:
        return cached[1]
    if tag != CODE_TAG and tag != CODE_TAG_SETS:
        version = tag.split("+")[0] if type(tag) is str else repr(tag)
        raise UnpicklingError(
            f"this pickle holds a function compiled by Python {version}; this interpreter is "
            f"Python {CODE_TAG}, and bytecode only loads on the minor version that made it"
        )
    body = unseal(data)
    if _CHECK_MARSHAL:  # 3.12/3.13: some forged bytecode crashes marshal.loads itself
        _check_marshal(body)
    try:
        result = marshal.loads(body)
    except (ValueError, EOFError, TypeError) as exc:
        raise UnpicklingError(f"corrupt code object in pickle: {exc}") from None
    if type(result) is not CodeType:
        raise UnpicklingError(f"corrupt code object in pickle: got {type(result).__name__}")
    # Before anything reads it: some forged bytecode crashes the interpreter when read.
    if _CHECK_LOADABLE:
        _check_loadable(result)
    if type(filename) is not str:
        raise UnpicklingError("corrupt code object in pickle: file name is not a string")
    result = _restored(result, filename, tag == CODE_TAG_SETS)
    if tag == CODE_TAG:
        if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
            _CODE_CACHE.clear()
        _CODE_CACHE[data] = (filename, result)
    return result


def make_cell() -> CellType:
    """An empty cell; :func:`fill_cell` fills it."""
    return CellType()


def fill_cell(cell: CellType, state: Tuple[Any]) -> CellType:
    """State setter of a standalone cell."""
    cell.cell_contents = state[0]
    return cell


def closure_cell(func: FunctionType, index: int) -> CellType:
    """A cell shared with a function rebuilt earlier in the same pickle."""
    if type(func) is not FunctionType:
        raise UnpicklingError("corrupt closure reference in pickle")
    closure = func.__closure__
    if closure is None or type(index) is not int or not 0 <= index < len(closure):
        raise UnpicklingError("corrupt closure reference in pickle")
    return closure[index]


def function(a: Any, b: Any, c: Any = None, d: Any = None, e: Any = None) -> FunctionType:
    """Create a function, or fill one in.

    ``function(tag, code_bytes, filename, globals, closure)`` makes the function;
    ``function(func, state)`` is its state setter. One callable serves both so a pickle
    references a single global per function kind: looking a global up costs more than the
    rest of a small lambda's pickle.
    """
    if type(a) is FunctionType:
        try:
            return _set_state(a, b)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
            # Fields of the wrong type: a corrupt or forged pickle, reported as such.
            raise UnpicklingError(f"corrupt function state in pickle: {exc}") from None
    return _make(a, b, c, d, e)


def _make(tag: str, data: bytes, filename: Any, globals_: Dict[str, Any],
          closure: Union[None, int, tuple]) -> FunctionType:
    co = code(tag, data, filename)
    if type(globals_) is not dict:
        raise UnpicklingError("corrupt function in pickle: globals is not a dict")
    if "__builtins__" not in globals_:
        globals_["__builtins__"] = builtins
    cells: Optional[tuple] = None
    if closure is not None:
        if type(closure) is int:
            if not 0 < closure <= len(co.co_freevars):
                raise UnpicklingError("corrupt function in pickle: bad closure size")
            cells = tuple([CellType() for _ in range(closure)])
        elif type(closure) is tuple:
            cells = tuple([CellType() if c is None else c for c in closure])
        else:
            raise UnpicklingError("corrupt function in pickle: bad closure")
    try:
        return FunctionType(co, globals_, None, None, cells)
    except (TypeError, ValueError) as exc:
        raise UnpicklingError(f"corrupt function in pickle: {exc}") from None


_NONES = (None,) * 13
# Names interned as the defining process has them (see _names.intern_keys).
_intern = sys.intern


def _import(name: str) -> Any:
    """The module ``name``, imported if it is not yet."""
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)


def _set_state(func: FunctionType, state: tuple) -> FunctionType:
    """Apply everything a function carries beyond its code, globals and cells.

    ``state`` is laid out as ``_format.STATE_FIELDS``, trailing Nones dropped.
    """
    if type(state) is not tuple or len(state) > 13:
        raise UnpicklingError("corrupt function state in pickle")
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
        if closure is None or type(cell_values) is not tuple or len(closure) != len(cell_values):
            raise UnpicklingError("corrupt function state in pickle: closure size mismatch")
        i = 0
        for value in cell_values:
            if empty_cells is None or i not in empty_cells:
                if type(value) is list:
                    intern_items(value)  # 3.14 dataclass __annotate__ cells: field names
                closure[i].cell_contents = value
            i += 1
    if name is not None:
        func.__name__ = _intern(name) if type(name) is str else name
    if qualname is not None:
        func.__qualname__ = _intern(qualname) if type(qualname) is str else qualname
    if module is not None:
        # Interned like a class's __module__ (3.14 dataclass reprs copy it onto a wrapper).
        func.__module__ = _intern(module[0]) if type(module[0]) is str else module[0]
    if doc is not None:
        func.__doc__ = doc[0]
    if annotations is not None:
        if type(annotations) is dict:
            intern_keys(annotations)
            func.__annotations__ = annotations
        elif not _HAS_ANNOTATE:
            func.__annotations__ = annotations  # refused: only a dict can be set here
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
