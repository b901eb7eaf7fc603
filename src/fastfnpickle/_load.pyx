# cython: language_level=3, binding=True, boundscheck=False, wraparound=False
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
from pickle import UnpicklingError
from types import CellType, CodeType, FunctionType

from ._codecheck import (FORBIDDEN_OPS as _FORBIDDEN_OPS, PRELOAD_OPS as _PRELOAD_OPS,
                         check_loadable as _check_loadable, check_marshal as _check_marshal)
from ._deferred import HAS_ANNOTATE as _HAS_ANNOTATE
from ._names import intern_items, intern_keys
from ._format import CODE_TAG, CODE_TAG_SETS, FROZENSET_MARK, SLICE_MARK, crc32_table

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


cdef object _unmarshal_sealed(object data):
    """The code object in sealed ``data``, checked as ``_format.unseal`` checks it."""
    if type(data) is not bytes or PyBytes_GET_SIZE(data) < 5:
        raise UnpicklingError("corrupt code object in pickle: too short")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data) - 4
    cdef uint32_t stored = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
                            | (<uint32_t>p[3] << 24))
    if _crc32(p + 4, n) != stored:
        raise UnpicklingError("corrupt code object in pickle: checksum mismatch (damaged bytes)")
    if _CHECK_MARSHAL:
        _check_marshal(data[4:])  # 3.12/3.13: some forged bytecode crashes marshal.loads itself
    # (Raises the same "marshal.loads" audit event as marshal.loads.)
    try:
        return PyMarshal_ReadObjectFromString(<const char*>(p + 4), n)
    except (ValueError, EOFError, TypeError) as exc:
        raise UnpicklingError(f"corrupt code object in pickle: {exc}") from None


cdef bint _set_filename_in_place(PyObject* code, object filename):
    """Put ``filename`` into the blank ``co_filename`` of a code object marshal just made, and
    of the code objects nested in it, without ``code.replace`` (which builds the whole code
    object again). Only objects nothing else references yet (one reference: the caller's, or
    the enclosing consts tuple's) are written; if any is shared, returns False having changed
    nothing, and the caller falls back to replace."""
    if FASTFNPICKLE_GIL_DISABLED or _refcount(code) != 1 or not _only_fresh_nested(code):
        return False
    # Interned, as the code constructor (replace) interns it: code objects loaded by other
    # pickles then share the one name object, and pickle it once again.
    _write_filename(code, _intern(filename))
    return True


cdef bint _only_fresh_nested(PyObject* code):
    cdef PyObject* consts = (<_CodeStruct*>code).co_consts
    cdef PyObject* c
    cdef Py_ssize_t i
    if not PyTuple_CheckExact(<object>consts):
        return False
    for i in range(PyTuple_GET_SIZE(<object>consts)):
        c = PyTuple_GET_ITEM(<object>consts, i)
        if _type_of(c) is <PyTypeObject*>_CodeType and (_refcount(c) != 1
                                                    or not _only_fresh_nested(c)):
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


cdef object _restored(object value, object filename, bint sets):
    cdef object t = type(value)
    if t is _CodeType:
        consts = value.co_consts
        if sets or _has_code(consts):
            consts = tuple([_restored(c, filename, sets) for c in consts])
        if value.co_filename == "":
            return value.replace(co_filename=filename, co_consts=consts)
        return value.replace(co_consts=consts)
    if sets and t is tuple:
        if value and type(value[0]) is str and value[0] == _MARK:
            return frozenset(value[1:])
        if value and type(value[0]) is str and value[0] == SLICE_MARK and len(value) == 4:
            return slice(value[1], value[2], value[3])
        return tuple([_restored(v, filename, True) for v in value])
    return value


cdef bint _has_code(tuple consts):
    for c in consts:
        if type(c) is _CodeType:
            return True
    return False


def code(tag, data, filename):
    """Rebuild a code object written by ``marshal`` on the same Python minor version."""
    cdef object cached = None
    if type(data) is bytes:
        cached = _CODE_CACHE.get(data)
    if cached is not None and tag == _TAG and (<tuple>cached)[0] == filename:
        return (<tuple>cached)[1]
    if tag != _TAG and tag != _TAG_SETS:
        version = tag.split("+")[0] if type(tag) is str else repr(tag)
        raise UnpicklingError(
            f"this pickle holds a function compiled by Python {version}; this interpreter is "
            f"Python {_TAG}, and bytecode only loads on the minor version that made it"
        )
    result = _unmarshal_sealed(data)
    if type(result) is not _CodeType:
        raise UnpicklingError(f"corrupt code object in pickle: got {type(result).__name__}")
    # Before anything reads it: some forged bytecode crashes the interpreter when read.
    if _CHECK_LOADABLE:
        _check_loadable(result)
    if type(filename) is not str:
        raise UnpicklingError("corrupt code object in pickle: file name is not a string")
    if tag == _TAG_SETS or not _set_filename_in_place(<PyObject*>result, filename):
        result = _restored(result, filename, tag == _TAG_SETS)
    if tag == _TAG:
        if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
            _CODE_CACHE.clear()
        _CODE_CACHE[data] = (filename, result)
    return result


def make_cell():
    """An empty cell; :func:`fill_cell` fills it."""
    return _CellType()


def fill_cell(cell, state):
    """State setter of a standalone cell."""
    cell.cell_contents = state[0]
    return cell


def closure_cell(func, index):
    """A cell shared with a function rebuilt earlier in the same pickle."""
    if type(func) is not _FunctionType:
        raise UnpicklingError("corrupt closure reference in pickle")
    closure = func.__closure__
    if closure is None or type(index) is not int or not 0 <= index < len(closure):
        raise UnpicklingError("corrupt closure reference in pickle")
    return closure[index]


def function(a, b, c=None, d=None, e=None):
    """Create a function, or fill one in.

    ``function(tag, code_bytes, filename, globals, closure)`` makes the function;
    ``function(func, state)`` is its state setter. One callable serves both so a pickle
    references a single global per function kind.
    """
    if type(a) is _FunctionType:
        try:
            return _set_state(a, b)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
            raise UnpicklingError(f"corrupt function state in pickle: {exc}") from None
    return _make(a, b, c, d, e)


cdef object _make(object tag, object data, object filename, object globals_, object closure):
    cdef object co = code(tag, data, filename)
    cdef Py_ssize_t n, i
    if type(globals_) is not dict:
        raise UnpicklingError("corrupt function in pickle: globals is not a dict")
    if "__builtins__" not in globals_:
        globals_["__builtins__"] = _builtins
    cells = None
    if closure is not None:
        if type(closure) is int:
            if not 0 < closure <= len(co.co_freevars):
                raise UnpicklingError("corrupt function in pickle: bad closure size")
            n = closure
            cells = tuple([_CellType() for i in range(n)])
        elif type(closure) is tuple:
            cells = tuple([_CellType() if c is None else c for c in closure])
        else:
            raise UnpicklingError("corrupt function in pickle: bad closure")
    try:
        return _FunctionType(co, globals_, None, None, cells)
    except (TypeError, ValueError) as exc:
        raise UnpicklingError(f"corrupt function in pickle: {exc}") from None


cdef tuple _NONES = (None,) * 13
# Names interned as the defining process has them (see _names.intern_keys).
cdef object _intern = sys.intern
cdef dict _sys_modules = sys.modules
cdef object _import_module = importlib.import_module


cdef object _import(object name):
    cdef PyObject* module = PyDict_GetItemWithError(_sys_modules, name)
    return <object>module if module is not NULL else _import_module(name)


cdef object _set_state(object func, object state):
    cdef Py_ssize_t i
    if type(state) is not tuple or len(<tuple>state) > 13:
        raise UnpicklingError("corrupt function state in pickle")
    (captured, modules, cell_values, defaults, doc, empty_cells, kwdefaults, qualname, name,
     module, annotations, attrs, extra) = <tuple>state + _NONES[len(<tuple>state):]
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
        for value in <tuple>cell_values:
            if empty_cells is None or i not in empty_cells:
                if type(value) is list:
                    intern_items(value)  # 3.14 dataclass __annotate__ cells: field names
                (<tuple>closure)[i].cell_contents = value
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
            func.__annotate__ = annotations
    if attrs is not None:
        func.__dict__.update(attrs)
    if extra is not None:
        type_params, submodules = extra
        if type_params is not None:
            func.__type_params__ = type_params
        for module_name in submodules or ():
            _import(module_name)
    return func
