"""Pure-Python twin of ``_load.pyx``: the reconstructors a pickle calls for every function.

Pickles never name this module: ``_rebuild`` re-exports whichever twin is active under its own
stable module path.
"""

import builtins
import marshal
from pickle import UnpicklingError
from types import CellType, CodeType, FunctionType
from typing import Any, Dict, Optional, Tuple

from ._format import CODE_TAG, FROZENSET_MARK


def _version_error(tag: object) -> UnpicklingError:
    return UnpicklingError(
        f"this pickle holds a function compiled by Python {tag}; this interpreter is Python "
        f"{CODE_TAG}, and bytecode only loads on the minor version that made it"
    )


def load_code(tag: str, data: bytes) -> CodeType:
    """Rebuild a code object written by ``marshal`` on the same Python minor version."""
    if tag != CODE_TAG:
        raise _version_error(tag)
    try:
        code = marshal.loads(data)
    except (ValueError, EOFError, TypeError) as exc:
        raise UnpicklingError(f"corrupt code object in pickle: {exc}") from None
    if type(code) is not CodeType:
        raise UnpicklingError(f"corrupt code object in pickle: got {type(code).__name__}")
    return code


def _restore_sets(value: Any) -> Any:
    t = type(value)
    if t is tuple:
        if value and value[0] == FROZENSET_MARK and type(value[0]) is str:
            return frozenset(value[1:])
        return tuple([_restore_sets(v) for v in value])
    if t is CodeType:
        return value.replace(co_consts=tuple([_restore_sets(c) for c in value.co_consts]))
    return value


def load_code_sets(tag: str, data: bytes) -> CodeType:
    """Like :func:`load_code`, for code whose frozenset constants were stored sorted."""
    return _restore_sets(load_code(tag, data))


def make_globals(name: Any, package: Any) -> Dict[str, Any]:
    """A fresh globals dict for the functions of one module, shared within one pickle."""
    g: Dict[str, Any] = {"__builtins__": builtins, "__name__": name}
    if package is not None:
        g["__package__"] = package
    return g


def make_cell() -> CellType:
    """An empty cell; a function's state or :func:`fill_cell` fills it."""
    return CellType()


def fill_cell(cell: CellType, state: Tuple[Any]) -> CellType:
    """State setter of a standalone cell."""
    cell.cell_contents = state[0]
    return cell


def make_function(code: CodeType, globals_: Dict[str, Any],
                  closure: Optional[Tuple[CellType, ...]]) -> FunctionType:
    """A function skeleton; :func:`set_function_state` fills in the rest."""
    if type(code) is not CodeType or type(globals_) is not dict:
        raise UnpicklingError("corrupt function in pickle: bad code object or globals")
    try:
        return FunctionType(code, globals_, None, None, closure)
    except (TypeError, ValueError) as exc:
        raise UnpicklingError(f"corrupt function in pickle: {exc}") from None


# Positions in the function state tuple (see _core_py.reduce_function).
def set_function_state(func: FunctionType, state: tuple) -> FunctionType:
    """Apply everything a function carries beyond its code, globals and cells."""
    try:
        (captured, defaults, kwdefaults, cell_values, empty_cells, name, qualname, module,
         doc, annotations, attrs, extra) = state
    except (TypeError, ValueError):
        raise UnpicklingError("corrupt function state in pickle") from None
    if captured:
        func.__globals__.update(captured)
    if defaults is not None:
        func.__defaults__ = defaults
    if kwdefaults is not None:
        func.__kwdefaults__ = kwdefaults
    if cell_values is not None:
        closure = func.__closure__
        if closure is None or len(closure) != len(cell_values):
            raise UnpicklingError("corrupt function state in pickle: closure size mismatch")
        skip = empty_cells or ()
        for i, value in enumerate(cell_values):
            if i not in skip:
                closure[i].cell_contents = value
    if name is not None:
        func.__name__ = name
    if qualname is not None:
        func.__qualname__ = qualname
    if module is not None:
        func.__module__ = module
    func.__doc__ = doc
    if annotations is not None:
        func.__annotations__ = annotations
    if attrs is not None:
        func.__dict__.update(attrs)
    if extra is not None:
        # Version-specific attributes (``__type_params__``) and submodules to import; the
        # submodules were imported already, simply by being unpickled.
        type_params = extra[0]
        if type_params is not None:
            func.__type_params__ = type_params
    return func
