# cython: language_level=3, binding=True, boundscheck=True, wraparound=False
# (Bounds checks stay on: every index here may come from a pickle.)
"""Compiled twin of ``_load_py.py``: the reconstructors a pickle calls for every function.

Same names, same behaviour; see the twin for the documentation of each. Pickles never name
this module: ``_rebuild`` re-exports the active twin under its own stable module path.
"""

import builtins as _builtins_module
import importlib
import marshal
import sys

from cpython.object cimport PyObject, PyTypeObject
from cpython.dict cimport PyDict_GetItemWithError
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_CheckExact
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_SIZE, PyTuple_GET_ITEM
from libc.stdint cimport uint32_t

cdef extern from "marshal.h":
    object PyMarshal_ReadObjectFromString(const char* data, Py_ssize_t len)

cdef extern from "Python.h":
    # Only the fields this module reads or writes; the C compiler finds them by name.
    ctypedef struct _CodeStruct "PyCodeObject":
        PyObject* co_consts
        PyObject* co_filename
    Py_ssize_t _refcount "Py_REFCNT"(PyObject* o)
    PyTypeObject* _type_of "Py_TYPE"(PyObject* o)

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define FASTFNPICKLE_GIL_DISABLED 1
    #else
    #define FASTFNPICKLE_GIL_DISABLED 0
    #endif
    """
    const int FASTFNPICKLE_GIL_DISABLED
from types import CellType, CodeType, FunctionType

from ._codecheck import (FORBIDDEN_OPS as _FORBIDDEN_OPS, PRELOAD_OPS as _PRELOAD_OPS,
                         check_loadable as _check_loadable, check_marshal as _check_marshal)
from ._deferred import HAS_ANNOTATE as _HAS_ANNOTATE
from ._names import intern_items, intern_keys
from ._corrupt import arity, corrupt, describe, foreign_tag, invalid
from ._format import (CODE_TAG, CODE_TAG_SETS, FIELD_ANNOTATIONS, FIELD_CELL_VALUES,
                      FIELD_EXTRA, FIELD_MODULES, FROZENSET_MARK, MAX_CONST_DEPTH,
                      REBUILD_CLOSURE_CELL, REBUILD_CODE, REBUILD_FILL_CELL, REBUILD_FUNCTION,
                      REBUILD_MAKE_CELL, SLICE_MARK, STATE_FIELDS, crc32_table)

cdef object _CellType = CellType
cdef object _CodeType = CodeType
cdef object _FunctionType = FunctionType
cdef object _builtins = _builtins_module
cdef str _TAG = CODE_TAG
cdef str _TAG_SETS = CODE_TAG_SETS
cdef str _MARK = FROZENSET_MARK
cdef object _marshal_loads = marshal.loads

cdef dict _CODE_CACHE = {}
# No opcode to refuse on this version (before 3.12): skip the Python-level call per code object.
cdef bint _CHECK_LOADABLE = len(_FORBIDDEN_OPS) > 0
cdef bint _CHECK_MARSHAL = len(_PRELOAD_OPS) > 0
cdef Py_ssize_t _CODE_CACHE_MAX = 512

# CRC-32 (zlib's polynomial) in C, shared with _core.pyx: zlib.crc32 on a memoryview slice
# cost more than unmarshalling the code it protects.
include "_crc32.pxi"
# The code check in C, for what it proves sound; _codecheck decides the rest.
include "_codecheck_fast.pxi"


cdef object _unmarshal_sealed(str who, bytes data):
    """The code object in sealed ``data``, checked as the pure twin checks it."""
    if PyBytes_GET_SIZE(data) < 5:
        raise invalid(who, "code", "is too short to hold sealed code")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data) - 4
    cdef uint32_t stored = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
                            | (<uint32_t>p[3] << 24))
    if _crc32(p + 4, n) != stored:
        raise invalid(who, "code", "fails its checksum (damaged bytes)")
    if _CHECK_MARSHAL and not _marshal_passes_fast(p + 4, n):
        _check_marshal(data[4:])  # 3.12/3.13: some forged bytecode crashes marshal.loads itself
    # (Raises the same "marshal.loads" audit event as marshal.loads.)
    try:
        return PyMarshal_ReadObjectFromString(<const char*>(p + 4), n)
    except (ValueError, EOFError, TypeError, SystemError) as exc:
        # SystemError: code CPython's own validation refuses while marshal builds it.
        raise invalid(who, "code", f"does not unmarshal: {exc}") from None


cdef bint _set_filename_in_place(PyObject* code, object filename):
    """Put ``filename`` into the blank ``co_filename`` of a code object marshal just made, and
    of the code objects nested in it, without ``code.replace`` (which builds the whole code
    object again). Only objects nothing else references yet (one reference: the caller's, or
    the enclosing consts tuple's) are written; if any is shared, returns False having changed
    nothing, and the caller falls back to replace."""
    if FASTFNPICKLE_GIL_DISABLED or _refcount(code) != 1 or not _only_fresh_nested(code, 0):
        return False
    # Interned, as the code constructor (replace) interns it: code objects loaded by other
    # pickles then share the one name object, and pickle it once again.
    _write_filename(code, _intern(filename))
    return True


cdef bint _only_fresh_nested(PyObject* code, int depth):
    # Too deep for _restored: False sends the code there, to be refused as the pure twin does.
    if depth >= _MAX_CONST_DEPTH:
        return False
    cdef PyObject* consts = (<_CodeStruct*>code).co_consts
    cdef PyObject* c
    cdef Py_ssize_t i
    if not PyTuple_CheckExact(<object>consts):
        return False
    for i in range(PyTuple_GET_SIZE(<object>consts)):
        c = PyTuple_GET_ITEM(<object>consts, i)
        if _type_of(c) is <PyTypeObject*>_CodeType and (_refcount(c) != 1
                                                    or not _only_fresh_nested(c, depth + 1)):
            return False
    return True


cdef void _write_filename(PyObject* code, object filename):
    cdef _CodeStruct* co = <_CodeStruct*>code
    cdef PyObject* old = co.co_filename
    cdef PyObject* c
    cdef Py_ssize_t i
    if PyUnicode_CheckExact(<object>old) and PyUnicode_GET_LENGTH(<object>old) == 0:
        Py_INCREF(filename)
        co.co_filename = <PyObject*>filename
        Py_DECREF(<object>old)
    for i in range(PyTuple_GET_SIZE(<object>co.co_consts)):
        c = PyTuple_GET_ITEM(<object>co.co_consts, i)
        if _type_of(c) is <PyTypeObject*>_CodeType:
            _write_filename(c, filename)


class _TooDeep(Exception):
    """Constants nested deeper than MAX_CONST_DEPTH (see there)."""


cdef int _MAX_CONST_DEPTH = MAX_CONST_DEPTH


cdef object _restored(object value, object filename, bint sets, int depth):
    if depth > _MAX_CONST_DEPTH:
        raise _TooDeep
    cdef object t = type(value)
    if t is _CodeType:
        consts = value.co_consts
        if sets or _has_code(consts):
            consts = tuple([_restored(c, filename, sets, depth + 1) for c in consts])
        if value.co_filename == "":
            return value.replace(co_filename=filename, co_consts=consts)
        return value.replace(co_consts=consts)
    if sets and t is tuple:
        if value and type(value[0]) is str and value[0] == _MARK:
            return frozenset(value[1:])
        if value and type(value[0]) is str and value[0] == SLICE_MARK and len(value) == 4:
            return slice(value[1], value[2], value[3])
        return tuple([_restored(v, filename, True, depth + 1) for v in value])
    return value


cdef bint _has_code(tuple consts):
    for c in consts:
        if type(c) is _CodeType:
            return True
    return False


def code(*args):
    """Rebuild a code object written by ``marshal`` on the same Python minor version:
    ``code(tag, sealed_bytes, filename)``."""
    if len(args) != 3:
        raise arity(REBUILD_CODE, len(args))
    return _code(REBUILD_CODE, args[0], args[1], args[2])


cdef object _code(str who, object tag, object data, object filename):
    cdef object cached
    if type(tag) is not str:
        raise corrupt(who, "tag", "a str", tag)
    if type(data) is not bytes:
        raise corrupt(who, "code", "bytes", data)
    if type(filename) is not str:
        raise corrupt(who, "filename", "a str", filename)
    cached = _CODE_CACHE.get(data)
    if cached is not None and tag == _TAG and (<tuple>cached)[0] == filename:
        return (<tuple>cached)[1]
    if tag != _TAG and tag != _TAG_SETS:
        raise foreign_tag(who, tag)
    result = _unmarshal_sealed(who, data)
    if type(result) is not _CodeType:
        raise corrupt(who, "code", "a marshalled code object", result)
    # Before anything reads it: some forged bytecode crashes the interpreter when read.
    if _CHECK_LOADABLE and not _code_passes_fast(result):
        _check_loadable(result)
    if tag == _TAG_SETS or not _set_filename_in_place(<PyObject*>result, filename):
        try:
            result = _restored(result, filename, tag == _TAG_SETS, 0)
        except (ValueError, TypeError, SystemError) as exc:
            # What code.replace() refuses that the code check lets through.
            raise invalid(who, "code", f"was refused by CPython: {exc}") from None
        except _TooDeep:
            raise invalid(who, "code", f"nests constants deeper than {MAX_CONST_DEPTH} levels, "
                          f"which no compiled source does") from None
    if tag == _TAG:
        if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
            _CODE_CACHE.clear()
        _CODE_CACHE[data] = (filename, result)
    return result


def make_cell(*args):
    """An empty cell; :func:`fill_cell` fills it."""
    if args:
        raise arity(REBUILD_MAKE_CELL, len(args))
    return _CellType()


def fill_cell(*args):
    """State setter of a standalone cell: ``fill_cell(cell, (value,))``."""
    if len(args) != 2:
        raise arity(REBUILD_FILL_CELL, len(args))
    cell = args[0]
    state = args[1]
    if type(cell) is not _CellType:
        raise corrupt(REBUILD_FILL_CELL, "cell", "a cell", cell)
    if type(state) is not tuple or PyTuple_GET_SIZE(state) != 1:
        raise corrupt(REBUILD_FILL_CELL, "state", "a 1-tuple", state)
    cell.cell_contents = (<tuple>state)[0]
    return cell


def closure_cell(*args):
    """A cell shared with a function rebuilt earlier in the same pickle:
    ``closure_cell(function, index)``."""
    if len(args) != 2:
        raise arity(REBUILD_CLOSURE_CELL, len(args))
    func = args[0]
    index = args[1]
    if type(func) is not _FunctionType:
        raise corrupt(REBUILD_CLOSURE_CELL, "function", "a function", func)
    if type(index) is not int:
        raise corrupt(REBUILD_CLOSURE_CELL, "index", "an int", index)
    closure = func.__closure__
    n = 0 if closure is None else len(closure)
    if not 0 <= index < n:
        raise invalid(REBUILD_CLOSURE_CELL, "index",
                      f"({describe(index)}) is out of range for a function with {n} cells")
    return closure[index]


def function(*args):
    """Create a function, or fill one in.

    ``function(tag, code_bytes, filename, globals, closure)`` makes the function;
    ``function(func, state)`` is its state setter. One callable serves both so a pickle
    references a single global per function kind.
    """
    cdef Py_ssize_t n = len(args)
    if n == 2:
        func = args[0]
        state = args[1]
        if type(func) is not _FunctionType:
            raise corrupt(REBUILD_FUNCTION, "function", "a function", func)
        _check_state(func, state)
        try:
            return _set_state(func, <tuple>state)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
            # What the checks cannot see (a value CPython's setters refuse).
            raise invalid(REBUILD_FUNCTION, "state",
                          f"was refused: {type(exc).__name__}: {exc}") from None
    if n == 5:
        return _make(args[0], args[1], args[2], args[3], args[4])
    raise arity(REBUILD_FUNCTION, n)


cdef object _make(object tag, object data, object filename, object globals_, object closure):
    cdef object co = _code(REBUILD_FUNCTION, tag, data, filename)
    cdef Py_ssize_t n, i, nfree
    if type(globals_) is not dict:
        raise corrupt(REBUILD_FUNCTION, "globals", "a dict", globals_)
    cells = None
    if closure is not None:
        nfree = len(co.co_freevars)
        if type(closure) is int:
            if closure != nfree or closure == 0:
                raise invalid(REBUILD_FUNCTION, "closure",
                              f"({describe(closure)}) is not the {nfree} cells the code needs")
            cells = tuple([_CellType() for i in range(nfree)])
        elif type(closure) is tuple:
            if PyTuple_GET_SIZE(closure) != nfree or nfree == 0:
                raise invalid(REBUILD_FUNCTION, "closure",
                              f"({describe(closure)}) is not the {nfree} cells the code needs")
            for c in <tuple>closure:
                if c is not None and type(c) is not _CellType:
                    raise corrupt(REBUILD_FUNCTION, "closure", "a tuple of cells and Nones",
                                  c)
            cells = tuple([_CellType() if c is None else c for c in <tuple>closure])
        else:
            raise corrupt(REBUILD_FUNCTION, "closure", "None, a cell count or a tuple of cells",
                          closure)
    if "__builtins__" not in globals_:
        globals_["__builtins__"] = _builtins
    try:
        return _FunctionType(co, globals_, None, None, cells)
    except (TypeError, ValueError) as exc:
        raise invalid(REBUILD_FUNCTION, "code", f"was refused: {exc}") from None


cdef tuple _NONES = (None,) * 13
# Names interned as the defining process has them (see _names.intern_keys).
cdef object _intern = sys.intern
cdef dict _sys_modules = sys.modules
cdef object _import_module = importlib.import_module


cdef object _import(object name):
    cdef PyObject* module = PyDict_GetItemWithError(_sys_modules, name)
    return <object>module if module is not NULL else _import_module(name)


cdef inline str _field(str name):
    return f"state field {name!r}"


cdef str _ANNOTATIONS = "a dict or an annotate function" if _HAS_ANNOTATE else "a dict"


cdef void _check_state(object func, object state) except *:
    """Refuse a function state that no pickler of ours writes, before any of it is applied."""
    cdef Py_ssize_t n, i, cells
    cdef object v
    if type(state) is not tuple or PyTuple_GET_SIZE(state) > 13:
        raise corrupt(REBUILD_FUNCTION, "state", "a tuple of at most 13 fields", state)
    n = PyTuple_GET_SIZE(state)
    for i in range(n):
        v = <object>PyTuple_GET_ITEM(state, i)
        if v is None:
            continue
        if i == 0 or i == 1 or i == 6 or i == 11:
            if type(v) is not dict:
                raise corrupt(REBUILD_FUNCTION, _field(STATE_FIELDS[i]), "a dict", v)
        elif i == 2 or i == 3 or i == 5:
            if type(v) is not tuple:
                raise corrupt(REBUILD_FUNCTION, _field(STATE_FIELDS[i]), "a tuple", v)
        elif i == 4 or i == 9:
            if type(v) is not tuple or PyTuple_GET_SIZE(v) != 1:
                raise corrupt(REBUILD_FUNCTION, _field(STATE_FIELDS[i]), "a 1-tuple", v)
        elif i == 7 or i == 8:
            if type(v) is not str:
                raise corrupt(REBUILD_FUNCTION, _field(STATE_FIELDS[i]), "a str", v)
    # The field types, by index as in the pure twin's _DICT_FIELDS, _TUPLE_FIELDS, ...; then
    # in its order what needs more than a type.
    if n > 2 and <object>PyTuple_GET_ITEM(state, 2) is not None:
        v = <object>PyTuple_GET_ITEM(state, 2)
        closure = func.__closure__
        cells = 0 if closure is None else len(closure)
        if cells != PyTuple_GET_SIZE(v):
            raise invalid(REBUILD_FUNCTION, _field(FIELD_CELL_VALUES),
                          f"holds {PyTuple_GET_SIZE(v)} values for a function with "
                          f"{cells} cells")
    if n > 1 and <object>PyTuple_GET_ITEM(state, 1) is not None:
        for module_name in (<dict>PyTuple_GET_ITEM(state, 1)).values():
            if type(module_name) is not str:
                raise corrupt(REBUILD_FUNCTION, _field(FIELD_MODULES),
                              "a dict of module names", module_name)
    if n > 10:
        v = <object>PyTuple_GET_ITEM(state, 10)
        if v is not None and type(v) is not dict and not (_HAS_ANNOTATE and callable(v)):
            raise corrupt(REBUILD_FUNCTION, _field(FIELD_ANNOTATIONS), _ANNOTATIONS, v)
    if n > 12 and <object>PyTuple_GET_ITEM(state, 12) is not None:
        extra = <object>PyTuple_GET_ITEM(state, 12)
        if type(extra) is not tuple or PyTuple_GET_SIZE(extra) != 2:
            raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA), "a 2-tuple", extra)
        if extra[0] is not None and type(extra[0]) is not tuple:
            raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA), "type parameters in a tuple",
                          extra[0])
        if extra[1] is not None:
            if type(extra[1]) is not tuple:
                raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA),
                              "submodule names in a tuple", extra[1])
            for module_name in <tuple>extra[1]:
                if type(module_name) is not str:
                    raise corrupt(REBUILD_FUNCTION, _field(FIELD_EXTRA),
                                  "submodule names in a tuple", module_name)


cdef object _set_state(object func, tuple state):
    cdef Py_ssize_t i
    (captured, modules, cell_values, defaults, doc, empty_cells, kwdefaults, qualname, name,
     module, annotations, attrs, extra) = state + _NONES[PyTuple_GET_SIZE(state):]
    if captured is not None:
        func.__globals__.update(captured)
    if modules is not None:
        g = func.__globals__
        for key, module_name in (<dict>modules).items():
            g[key] = _import(module_name)
    if defaults is not None:
        func.__defaults__ = defaults
    if kwdefaults is not None:
        func.__kwdefaults__ = kwdefaults
    if cell_values is not None:
        closure = func.__closure__
        i = 0
        for value in <tuple>cell_values:
            if empty_cells is None or i not in empty_cells:
                if type(value) is list:
                    intern_items(value)  # 3.14 dataclass __annotate__ cells: field names
                (<tuple>closure)[i].cell_contents = value
            i += 1
    if name is not None:
        func.__name__ = _intern(name)
    if qualname is not None:
        func.__qualname__ = _intern(qualname)
    if module is not None:
        # Interned like a class's __module__ (3.14 dataclass reprs copy it onto a wrapper).
        m = (<tuple>module)[0]
        func.__module__ = _intern(m) if type(m) is str else m
    if doc is not None:
        func.__doc__ = (<tuple>doc)[0]
    if annotations is not None:
        if type(annotations) is dict:
            intern_keys(annotations)
            func.__annotations__ = annotations
        else:  # 3.14+: the function that computes them (see _deferred.py)
            func.__annotate__ = annotations
    if attrs is not None:
        func.__dict__.update(attrs)
    if extra is not None:
        type_params, submodules = <tuple>extra
        if type_params is not None:
            func.__type_params__ = type_params
        for module_name in submodules or ():
            _import(module_name)
    return func
