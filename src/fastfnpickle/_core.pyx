# cython: language_level=3, binding=True, boundscheck=False, wraparound=False
"""Compiled twin of ``_core_py.py``: the pickling hot path.

A 1:1 port: same names, same reduce values, same output bytes; the parity tests hold both to
that. The twin documents the design; comments here cover only what is Cython-specific.

``_pickle.Pickler`` cannot be a ``cdef class`` base (its struct is private), so ``Pickler`` is a
regular class whose ``reducer_override`` is a compiled method calling ``cdef`` helpers.
"""

import io
import marshal
import pickle
import sys
from pickle import PicklingError
from types import CellType, CodeType, FunctionType, ModuleType

from cpython.object cimport PyObject, PyTypeObject, Py_TPFLAGS_HEAPTYPE
from cpython.dict cimport PyDict_GetItemWithError
from cpython.type cimport PyType_Check
from cpython.module cimport PyModule_Check
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t
from libc.string cimport memcmp, memcpy
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM

cdef extern from "Python.h":
    # Fields present under these names on 3.10-3.15; the C compiler finds them by name. Read
    # directly, they skip an attribute lookup each (a tenth of a small lambda's dump was
    # attribute lookups on its code object).
    ctypedef struct _CodeStruct "PyCodeObject":
        PyObject* co_consts
        PyObject* co_names
        PyObject* co_filename
        PyObject* co_name
        int co_flags
        int co_argcount
        int co_kwonlyargcount
    PyTypeObject* _type_of "Py_TYPE"(PyObject* o)
    ctypedef struct _VersionedType "PyTypeObject":
        unsigned int tp_version_tag

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000
    #define FFP_CO_CODE(co) PyCode_GetCode((PyCodeObject *)(co))
    #define FFP_CO_QUALNAME(co) (((PyCodeObject *)(co))->co_qualname)
    #else
    static PyObject *FFP_CO_CODE(PyObject *co) {
        PyObject *code = ((PyCodeObject *)co)->co_code;
        Py_INCREF(code);
        return code;
    }
    #define FFP_CO_QUALNAME(co) (((PyCodeObject *)(co))->co_name)
    #endif
    """
    # 3.11+ keep the bytecode in the struct in another form; co_code is made (and cached) by
    # PyCode_GetCode. Before 3.11 there is no co_qualname: a function's default is co_name.
    bytes FFP_CO_CODE(object code)
    PyObject* FFP_CO_QUALNAME(object code)

cdef extern from *:
    """
    /* The names of a local and of a cell variable by oparg, borrowed, NULL when out of range.
       3.11+ index one table of all locals (parameters first, so co_varnames[i] is its item
       i for a parameter); before, co_varnames and co_cellvars + co_freevars. */
    static PyObject *ffp_param_name(PyObject *code, unsigned int arg) {
    #if PY_VERSION_HEX >= 0x030B0000
        PyObject *names = ((PyCodeObject *)code)->co_localsplusnames;
    #else
        PyObject *names = ((PyCodeObject *)code)->co_varnames;
    #endif
        return arg < (size_t)PyTuple_GET_SIZE(names) ? PyTuple_GET_ITEM(names, arg) : NULL;
    }
    static PyObject *ffp_deref_name(PyObject *code, unsigned int arg) {
    #if PY_VERSION_HEX >= 0x030B0000
        return ffp_param_name(code, arg);
    #else
        PyCodeObject *co = (PyCodeObject *)code;
        size_t ncell = (size_t)PyTuple_GET_SIZE(co->co_cellvars);
        if (arg < ncell) return PyTuple_GET_ITEM(co->co_cellvars, arg);
        arg -= (unsigned int)ncell;
        return arg < (size_t)PyTuple_GET_SIZE(co->co_freevars)
            ? PyTuple_GET_ITEM(co->co_freevars, arg) : NULL;
    #endif
    }
    """
    # Read from the struct: the Python-level deref_name call cost a fifth of scanning a small
    # closure. Out of range (damaged code), the Python route raises the error the twin raises.
    PyObject* ffp_param_name(object code, unsigned int arg)
    PyObject* ffp_deref_name(object code, unsigned int arg)

cdef extern from "Python.h":
    # Borrowed, NULL for an empty cell (Cython's own declaration returns an object).
    PyObject* PyCell_GET(object cell)
    Py_ssize_t PyUnicode_FindChar(object s, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end,
                                  int direction) except -2
    const Py_ssize_t PY_SSIZE_T_MAX
    PyObject* PyModule_GetDict(object module)  # borrowed

cdef extern from "marshal.h":
    bytes PyMarshal_WriteObjectToString(object value, int version)

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define FASTFNPICKLE_GIL_DISABLED 1
    #else
    #define FASTFNPICKLE_GIL_DISABLED 0
    #endif
    """
    const int FASTFNPICKLE_GIL_DISABLED

cdef extern from "Python.h":
    # Field names are the same on 3.10-3.15; Cython emits them by name, the C compiler does the
    # layout (3.14 added func_annotate, read below through FFP_FUNC_ANNOTATE). Reading the
    # struct skips eleven attribute lookups per function.
    ctypedef struct PyFunctionObject:
        PyObject* func_code
        PyObject* func_globals
        PyObject* func_defaults
        PyObject* func_kwdefaults
        PyObject* func_closure
        PyObject* func_doc
        PyObject* func_name
        PyObject* func_dict
        PyObject* func_module
        PyObject* func_annotations
        PyObject* func_qualname

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030E0000
    #define FFP_FUNC_ANNOTATE(f) (((PyFunctionObject *)(f))->func_annotate)
    #else
    #define FFP_FUNC_ANNOTATE(f) ((PyObject *)NULL)
    #endif
    """
    # The field exists from 3.14 on (PEP 649), so it is read through a version-guarded macro.
    PyObject* FFP_FUNC_ANNOTATE(object func)

from . import _bytecode as B
from . import _deferred
from ._deferred import (CLASSDICT_CELL as _CLASSDICT_CELL_NAME,
                        classdict_snapshot as _classdict_snapshot)
from . import _annotations, _classes, _codecheck, _errors, _fork, _modules, _rebuild, _reducers
from . import _wrappers
from ._format import (CODE_TAG, CODE_TAG_SETS, FROZENSET_MARK, SLICE_MARK,
                      PicklingRecursionError, crc32_table)

DEFAULT_PROTOCOL = pickle.HIGHEST_PROTOCOL

cdef object _FunctionType = FunctionType
cdef object _CodeType = CodeType
cdef object _CellType = CellType
cdef object _ModuleType = ModuleType
cdef str _CLASSDICT_CELL = _CLASSDICT_CELL_NAME
cdef object _LAZY_IMPORT_TYPE = _deferred.LAZY_IMPORT_TYPE  # None before 3.15
cdef object _SINGLEDISPATCH_CODE = _wrappers.SINGLEDISPATCH_CODE
cdef object _MISSING = object()
cdef object _DYNAMIC_MODULES = frozenset({"__main__", "__mp_main__", None})
cdef dict _sys_modules = sys.modules
cdef object _marshal_dumps = marshal.dumps
# 3.14+: code.replace() (the pure twin's path) drops the argument bits the compiler sets in
# co_localspluskinds, which marshal writes: marshalling the original in place would give
# other bytes than the twin, so 3.14+ takes the copying path too.
cdef bint _BLANK_IN_PLACE = sys.version_info < (3, 14)
cdef object _intern = sys.intern
cdef bint _HAS_TYPE_PARAMS = sys.version_info >= (3, 12)

# The load side is complete before the dump side imports: bind its names once.
cdef object _OWN_FUNCTIONS = _rebuild.OWN_FUNCTIONS
# The globals of the plain-Python reconstructors among them (the twin's): a function with other
# globals is not one of them, known without hashing it into the set.
cdef tuple _OWN_GLOBALS = tuple({id(f.__globals__): f.__globals__ for f in _OWN_FUNCTIONS
                                 if type(f) is FunctionType}.values())


cdef inline bint _is_own_function(object func):
    # ``func in _OWN_FUNCTIONS`` for an exact function.
    cdef PyObject* g = (<PyFunctionObject*>func).func_globals
    cdef Py_ssize_t i
    for i in range(PyTuple_GET_SIZE(_OWN_GLOBALS)):
        if PyTuple_GET_ITEM(_OWN_GLOBALS, i) is g:
            return func in _OWN_FUNCTIONS
    return False
cdef object _FUNCTION = _rebuild.function
cdef object _IMPORT_MODULE = _rebuild.import_module
# register_pickle_by_value() rebinds _modules.BY_VALUE; its module dict is read directly (a
# module attribute lookup costs four times a dict lookup, twice per dumps call).
cdef dict _MODULES_DICT = _modules.__dict__


cdef inline object _registered():
    return <object>PyDict_GetItemWithError(_MODULES_DICT, "BY_VALUE")


cdef inline object _field(PyObject* value):
    return None if value is NULL else <object>value


cdef int _EXTENDED_ARG = B.EXTENDED_ARG
cdef int _LOAD_GLOBAL = B.LOAD_GLOBAL
cdef int _STORE_GLOBAL = B.STORE_GLOBAL
cdef int _DELETE_GLOBAL = B.DELETE_GLOBAL
cdef int _LOAD_NAME = B.LOAD_NAME
cdef int _LOAD_ATTR = B.LOAD_ATTR
cdef int _LOAD_METHOD = B.LOAD_METHOD
cdef int _LOAD_FROM_DICT_OR_GLOBALS = B.LOAD_FROM_DICT_OR_GLOBALS
cdef int _CACHE = B.CACHE
cdef unsigned char _CACHE_ENTRIES[256]
for _op in range(256):
    _CACHE_ENTRIES[_op] = B.CACHE_ENTRIES[_op]
cdef int _LOAD_GLOBAL_SHIFT = B.LOAD_GLOBAL_SHIFT
cdef int _LOAD_ATTR_SHIFT = B.LOAD_ATTR_SHIFT
cdef int _LOAD_FAST = B.LOAD_FAST
cdef int _LOAD_FAST_CHECK = B.LOAD_FAST_CHECK
cdef int _LOAD_FAST_BORROW = B.LOAD_FAST_BORROW
cdef int _LOAD_FAST_LOAD_FAST = B.LOAD_FAST_LOAD_FAST
cdef int _LOAD_FAST_BORROW_LOAD_FAST_BORROW = B.LOAD_FAST_BORROW_LOAD_FAST_BORROW
cdef int _LOAD_DEREF = B.LOAD_DEREF
cdef int _LOAD_CLASSDEREF = B.LOAD_CLASSDEREF
cdef int _LOAD_FROM_DICT_OR_DEREF = B.LOAD_FROM_DICT_OR_DEREF
cdef object _HEAD_FAST = B.HEAD_FAST
cdef object _HEAD_DEREF = B.HEAD_DEREF
cdef object _deref_name = B.deref_name


# --------------------------------------------------------------------------------------------
# Per-code-object analysis, cached

cdef class CodeInfo:
    """What pickling needs to know about one code object."""
    cdef readonly str tag
    cdef readonly bytes data
    cdef readonly object filename
    cdef readonly tuple names
    cdef readonly tuple chains
    cdef readonly object doc
    # Per chain, (root module name, the dotted names its attributes spell): built once per
    # module name (concatenating and hashing new strings on every pickle cost more than the
    # rest of a function with a few chains), rebuilt if a later pickle finds another module.
    cdef list dotted

    def __init__(self, str tag, bytes data, filename, tuple names, tuple chains, doc):
        self.tag = tag
        self.data = data
        self.filename = filename
        self.names = names
        self.chains = chains
        self.doc = doc
        self.dotted = [None] * len(chains)


# The code cache: a code object's CodeInfo rides on the code object itself, in a co_extra slot
# of ours (PEP 523's per-code storage), so finding it is a pointer read. A dict keyed by
# id(code) cost a twentieth of a small lambda's dump in hashing, probing, inserting and popping
# int keys. The ring holds the cached code objects, oldest at _ring_next: the cache is bounded
# in entries and in the bytes of their marshal data, and full, it drops its oldest entries for
# each new one. While in the ring a code object cannot die, so an id is never mistaken for
# another; dropped, its slot is emptied. Kept small: every entry keeps its marshal bytes alive,
# and a cache of thousands made pickling new functions a fifth slower (memory touched and
# faulted in, measured side by side: 1.24x the marshal floor at 4,096 entries against 1.12x at
# 512 for big-packages), while the functions a program pickles again and again are usually few.
cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030C0000
    #define FFP_RequestCodeExtraIndex PyUnstable_Eval_RequestCodeExtraIndex
    #define FFP_Code_GetExtra PyUnstable_Code_GetExtra
    #define FFP_Code_SetExtra PyUnstable_Code_SetExtra
    #else
    #define FFP_RequestCodeExtraIndex _PyEval_RequestCodeExtraIndex
    #define FFP_Code_GetExtra _PyCode_GetExtra
    #define FFP_Code_SetExtra _PyCode_SetExtra
    #endif
    /* Called by the interpreter when a slot is overwritten or its code object freed. */
    static void ffp_code_extra_free(void *info) { Py_XDECREF((PyObject *)info); }
    """
    ctypedef void (*freefunc)(void*)
    Py_ssize_t FFP_RequestCodeExtraIndex(freefunc free) except? -1
    int FFP_Code_GetExtra(object code, Py_ssize_t index, void** extra) except -1
    int FFP_Code_SetExtra(object code, Py_ssize_t index, void* extra) except -1
    void ffp_code_extra_free(void* info)

cdef Py_ssize_t _CODE_EXTRA = FFP_RequestCodeExtraIndex(ffp_code_extra_free)
cdef Py_ssize_t _CODE_CACHE_MAX = 512
cdef Py_ssize_t _CODE_CACHE_MAX_BYTES = 2 << 20
cdef list _CODE_RING = [None] * _CODE_CACHE_MAX
cdef Py_ssize_t _ring_next = 0
cdef Py_ssize_t _cache_bytes = 0
# An entry whose marshal bytes some pickler's memo holds is in use: a pickle in progress (in
# this thread or another) wrote them, and must find the same bytes object if it meets that code
# object again, or it writes the code a second time (so what a pickle holds would depend on
# what the cache happened to drop between two meetings). The ring passes over entries in use;
# when the next few are all in use (a pickle of more code objects than the ring holds), the
# new entry waits in the overflow list, emptied of what is out of use when a pickle ends.
cdef list _CODE_OVERFLOW = []
cdef Py_ssize_t _RING_SCAN = 4
# Set when a scan found only entries in use; until the next drain new entries go straight to
# the overflow list. A batch of thousands of new functions otherwise looked at four busy ring
# entries per new one (each a cold code object, its extra slot and its bytes).
cdef bint _ring_busy = False


cdef extern from "Python.h":
    Py_ssize_t _refcount "Py_REFCNT"(PyObject* o)


cdef inline CodeInfo _cached_info(object code):
    cdef void* found = NULL
    FFP_Code_GetExtra(code, _CODE_EXTRA, &found)
    return None if found is NULL else <CodeInfo>found


cdef inline bint _in_use(object code):
    # None (an empty slot) is not in use. Only the entry holds its bytes unless a memo does.
    if code is None:
        return False
    cdef void* found = NULL
    FFP_Code_GetExtra(code, _CODE_EXTRA, &found)
    return found is not NULL and _refcount(<PyObject*>(<CodeInfo>found).data) > 1


cdef void _drop_entry(object code):
    # Empties code's co_extra slot and takes its bytes off the total. The caller keeps ``code``
    # until the cache is consistent again: freeing a code object can run other code (a weakref
    # callback), which may pickle. (Its entry goes with the slot's reference: freeing one frees
    # only tuples and strings.)
    global _cache_bytes
    info = _cached_info(code)
    if info is not None:
        _cache_bytes -= PyBytes_GET_SIZE((<CodeInfo>info).data)
        FFP_Code_SetExtra(code, _CODE_EXTRA, NULL)  # the slot's reference goes, info's stays


cdef object _uncache(Py_ssize_t slot):
    # Empties a ring slot; returns the code object it held (see _drop_entry).
    code = _CODE_RING[slot]
    if code is not None:
        _drop_entry(code)
        _CODE_RING[slot] = None
    return code


cdef void _drain_overflow() except *:
    # The overflow entries out of use go; the list is replaced before their code objects are
    # released (see _drop_entry).
    global _CODE_OVERFLOW, _ring_busy
    cdef list kept = []
    cdef list dropped = _CODE_OVERFLOW
    _CODE_OVERFLOW = kept
    _ring_busy = False
    for code in dropped:
        if _in_use(code):
            kept.append(code)
        else:
            _drop_entry(code)


def _code_cache_limits(entries=None, max_bytes=None):
    """Empty the code cache and set its bounds (for tests and measurements); the bounds."""
    global _CODE_CACHE_MAX, _CODE_CACHE_MAX_BYTES, _CODE_RING, _ring_next, _CODE_OVERFLOW
    global _ring_busy
    if entries is not None and entries < 1:
        raise ValueError("the code cache needs at least one entry")
    cdef list dropped = []
    cdef Py_ssize_t i
    for i in range(len(_CODE_RING)):
        dropped.append(_uncache(i))
    for code in _CODE_OVERFLOW:
        _drop_entry(code)
    dropped.append(_CODE_OVERFLOW)
    _CODE_OVERFLOW = []
    _ring_busy = False
    if entries is not None:
        _CODE_CACHE_MAX = entries
    if max_bytes is not None:
        _CODE_CACHE_MAX_BYTES = max_bytes
    _CODE_RING = [None] * _CODE_CACHE_MAX
    _ring_next = 0
    return _CODE_CACHE_MAX, _CODE_CACHE_MAX_BYTES


def _code_cache_holds(code):
    """Whether ``code`` has an entry in the code cache (for the tests)."""
    return _cached_info(code) is not None


def _code_cache_overflow():
    """How many entries wait in the overflow list (for the tests)."""
    return len(_CODE_OVERFLOW)


cdef void _cache_code(object code, CodeInfo info) except *:
    global _ring_next, _cache_bytes, _ring_busy
    cdef Py_ssize_t size = PyBytes_GET_SIZE(info.data)
    cdef Py_ssize_t n = len(_CODE_RING)
    cdef Py_ssize_t k, j, scanned
    cdef list more = None
    # The slot: the oldest of the next few whose entry is not in use.
    cdef bint placed = False
    if not _ring_busy:
        for k in range(_RING_SCAN if _RING_SCAN < n else n):
            if not _in_use(_CODE_RING[_ring_next]):
                placed = True
                break
            _ring_next = (_ring_next + 1) % n
        _ring_busy = not placed
    Py_INCREF(info)  # the slot's reference
    if not placed:
        FFP_Code_SetExtra(code, _CODE_EXTRA, <void*>info)
        _CODE_OVERFLOW.append(code)
        _cache_bytes += size
        return
    dropped = _uncache(_ring_next)
    # Over the byte bound, the oldest entries not in use go too (one pass over the ring at most).
    j = (_ring_next + 1) % n
    scanned = 1
    while _cache_bytes + size > _CODE_CACHE_MAX_BYTES and scanned < n:
        if not _in_use(_CODE_RING[j]):
            if more is None:
                more = []
            more.append(_uncache(j))
        j = (j + 1) % n
        scanned += 1
    FFP_Code_SetExtra(code, _CODE_EXTRA, <void*>info)
    _CODE_RING[_ring_next] = code
    _ring_next = (_ring_next + 1) % n
    _cache_bytes += size

# ``_format.seal`` in C (the CRC-32 below is shared with _load.pyx): the Python version's call,
# slice and concat cost more than the marshalling of a small lambda.
include "_crc32.pxi"


cdef bytes _seal(bytes body):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef uint32_t crc = _crc32(p, n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + 4)
    cdef unsigned char* q = <unsigned char*>PyBytes_AS_STRING(out)
    q[0] = crc & 0xFF
    q[1] = (crc >> 8) & 0xFF
    q[2] = (crc >> 16) & 0xFF
    q[3] = (crc >> 24) & 0xFF
    memcpy(q + 4, p, n)
    return out


cpdef CodeInfo code_info(object code):
    """The cached :class:`CodeInfo` of ``code``."""
    cdef CodeInfo info = _cached_info(code)
    if info is not None:
        return info
    cdef list names = []
    cdef list chains = []
    seen = set()  # names (str) and chains (tuples) never collide
    cdef bint has_sets = _scan_code(code, names, chains, seen, seen)
    filename = <object>(<_CodeStruct*><PyObject*>code).co_filename
    if (has_sets or FASTFNPICKLE_GIL_DISABLED or not _BLANK_IN_PLACE
            or type(filename) is not str or not _exact_str_filenames(<PyObject*>code)):
        data = _seal(_marshal_dumps(_portable(code, filename, has_sets), 2))
    else:
        data = _seal(_marshal_blanked(code, filename))
    info = CodeInfo.__new__(CodeInfo)
    info.tag = CODE_TAG_SETS if has_sets else CODE_TAG
    info.data = data
    info.filename = filename
    info.names = tuple(names)
    info.chains = tuple(chains)
    info.doc = _derived_doc(code)
    _cache_code(code, info)
    return info


# 3.14+: the compiler flags a docstring (inspect.CO_HAS_DOCSTRING); before, any str first
# constant is one.
cdef int _CO_HAS_DOCSTRING = _codecheck.CO_HAS_DOCSTRING


cdef object _derived_doc(object code):
    # The docstring a function made from ``code`` gets (PyFunction_New's rule, which loading
    # follows), read from the struct: the twin asks the interpreter by making a function, and
    # tests/test_code_encoding.py holds the two to the same answer on every version.
    cdef _CodeStruct* co = <_CodeStruct*><PyObject*>code
    if _CO_HAS_DOCSTRING and not (co.co_flags & _CO_HAS_DOCSTRING):
        return None
    if PyTuple_GET_SIZE(<object>co.co_consts) == 0:
        return None
    first = <object>PyTuple_GET_ITEM(<object>co.co_consts, 0)
    return first if isinstance(first, str) else None


cdef void _add_chain(list chains, set seen_chains, object head, list attrs):
    chain = (head, tuple(attrs))
    cdef Py_ssize_t before = len(seen_chains)
    seen_chains.add(chain)  # one hash of the nested tuple, not two
    if len(seen_chains) != before:
        chains.append(chain)


cdef inline object _name_at(object code, tuple co_names, unsigned int i):
    if i >= <unsigned int>len(co_names):
        raise PicklingError(
            f"cannot pickle code object {code.co_name!r}: its bytecode refers to name #{i}, "
            f"but co_names holds {len(co_names)}")
    return co_names[i]


cdef object _PENDING = object()  # see the twin


cdef object _local_head(object code, object kind, unsigned int arg):
    cdef PyObject* name
    if kind is _HEAD_FAST:
        name = ffp_param_name(code, arg)
        return (kind, code.co_varnames[arg] if name is NULL else <object>name)
    name = ffp_deref_name(code, arg)
    return (kind, _deref_name(code, arg) if name is NULL else <object>name)


cdef bint _scan_code(object code, list names, list chains, set seen_names,
                     set seen_chains, bint top=True) except -1:
    cdef _CodeStruct* cs = <_CodeStruct*><PyObject*>code
    cdef bytes co = FFP_CO_CODE(code)
    cdef tuple co_names = <tuple>cs.co_names
    cdef const unsigned char* p = co
    cdef Py_ssize_t n = len(co)
    cdef Py_ssize_t i = 0
    cdef int op
    cdef unsigned int arg, ext = 0
    cdef object head = None
    cdef object pending_kind = None
    cdef unsigned int pending_arg = 0
    cdef list attrs = []
    cdef object name
    # Parameters come first among the locals; only the outermost code's have known values.
    cdef unsigned int nparams = cs.co_argcount + cs.co_kwonlyargcount if top else 0
    while i < n:
        op = p[i]
        arg = p[i + 1] | ext
        i += 2
        if op == _EXTENDED_ARG:
            ext = arg << 8
            continue
        ext = 0
        if op == _CACHE:
            continue
        i += 2 * _CACHE_ENTRIES[op]
        if op == _LOAD_ATTR:
            if head is not None:
                if head is _PENDING:
                    head = _local_head(code, pending_kind, pending_arg)
                attrs.append(_name_at(code, co_names, arg >> _LOAD_ATTR_SHIFT))
            continue
        if op == _LOAD_METHOD:
            if head is not None:
                if head is _PENDING:
                    head = _local_head(code, pending_kind, pending_arg)
                attrs.append(_name_at(code, co_names, arg))
            continue
        if head is not None:
            if attrs:
                _add_chain(chains, seen_chains, head, attrs)
                attrs = []
            head = None
        if op == _LOAD_GLOBAL:
            name = _name_at(code, co_names, arg >> _LOAD_GLOBAL_SHIFT)
            head = name
        elif op == _LOAD_NAME or op == _LOAD_FROM_DICT_OR_GLOBALS:
            name = _name_at(code, co_names, arg)
            head = name
        elif op == _STORE_GLOBAL or op == _DELETE_GLOBAL:
            name = _name_at(code, co_names, arg)
        elif op == _LOAD_FAST or op == _LOAD_FAST_CHECK or op == _LOAD_FAST_BORROW:
            if arg < nparams:
                head = _PENDING
                pending_kind = _HEAD_FAST
                pending_arg = arg
            continue
        elif op == _LOAD_FAST_LOAD_FAST or op == _LOAD_FAST_BORROW_LOAD_FAST_BORROW:
            if (arg & 15) < nparams:  # the second local is the one an attribute applies to
                head = _PENDING
                pending_kind = _HEAD_FAST
                pending_arg = arg & 15
            continue
        elif (op == _LOAD_DEREF or op == _LOAD_CLASSDEREF
              or op == _LOAD_FROM_DICT_OR_DEREF):
            head = _PENDING
            pending_kind = _HEAD_DEREF
            pending_arg = arg
            continue
        else:
            continue
        if name not in seen_names:
            seen_names.add(name)
            names.append(name)
    if head is not None and attrs:
        _add_chain(chains, seen_chains, head, attrs)
    cdef bint has_sets = False
    for const in <tuple>cs.co_consts:
        t = type(const)
        if t is _CodeType:
            if _scan_code(const, names, chains, seen_names, seen_chains, False):
                has_sets = True
        elif t is frozenset or t is slice or (t is tuple and _has_frozenset(const)):
            has_sets = True
    return has_sets


cdef bint _has_frozenset(tuple value):
    for v in value:
        t = type(v)
        if t is frozenset or (t is tuple and _has_frozenset(v)):
            return True
    return False


def _sort_key(value):
    return _marshal_dumps(value, 2)


cdef object _portable(object value, object filename, bint sort_sets):
    t = type(value)
    if t is _CodeType:
        consts = value.co_consts
        if sort_sets or _has_code(consts):
            consts = tuple([_portable(c, filename, sort_sets) for c in consts])
        if value.co_filename == filename:
            return value.replace(co_filename="", co_consts=consts)
        return value.replace(co_consts=consts)
    if sort_sets:
        if t is frozenset:
            items = sorted([_portable(v, filename, True) for v in value], key=_sort_key)
            return (FROZENSET_MARK,) + tuple(items)
        if t is slice:
            return (SLICE_MARK, value.start, value.stop, value.step)
        if t is tuple:
            return tuple([_portable(v, filename, True) for v in value])
    return value


cdef bint _exact_str_filenames(PyObject* code):
    # A str subclass could run Python code from __eq__ while names are swapped out.
    cdef _CodeStruct* co = <_CodeStruct*>code
    cdef PyObject* c
    cdef Py_ssize_t i
    if type(<object>co.co_filename) is not str:
        return False
    for i in range(PyTuple_GET_SIZE(<object>co.co_consts)):
        c = PyTuple_GET_ITEM(<object>co.co_consts, i)
        if _type_of(c) is <PyTypeObject*>_CodeType and not _exact_str_filenames(c):
            return False
    return True


cdef list _blank_filenames(PyObject* code, object filename, object blank, list swapped):
    cdef _CodeStruct* co = <_CodeStruct*>code
    cdef PyObject* c
    cdef Py_ssize_t i
    if <object>co.co_filename == filename:
        swapped.append(<object>co.co_filename)  # holds the reference the struct gave up
        swapped.append(<object>code)
        Py_INCREF(blank)
        co.co_filename = <PyObject*>blank
    for i in range(PyTuple_GET_SIZE(<object>co.co_consts)):
        c = PyTuple_GET_ITEM(<object>co.co_consts, i)
        if _type_of(c) is <PyTypeObject*>_CodeType:
            _blank_filenames(c, filename, blank, swapped)
    return swapped


cdef void _restore_filenames(list swapped) noexcept:
    cdef Py_ssize_t i
    cdef _CodeStruct* co
    cdef PyObject* blank
    for i in range(len(swapped) - 2, -1, -2):
        co = <_CodeStruct*>(<PyObject*>swapped[i + 1])
        blank = co.co_filename
        Py_INCREF(swapped[i])
        co.co_filename = <PyObject*>swapped[i]
        Py_DECREF(<object>blank)


cdef bytes _marshal_blanked(object code, str filename):
    """``marshal.dumps(_portable(code, filename, False), 2)`` without building the blanked
    copies: the file name is swapped out of the code objects themselves for the duration of
    the marshal call, then put back. Nothing else can observe the swap: marshal runs no
    Python code and allocates no GC-tracked object (so no collection, no finalizer, no
    GIL release) between the two swaps, and builds without a GIL take the copying path.
    (An audit hook on "marshal.dumps" runs inside and sees the blank name, as it saw the
    blanked copy before; it must not hand the code object to another thread meanwhile.)"""
    cdef list swapped = []
    try:
        _blank_filenames(<PyObject*>code, filename, "", swapped)
        return PyMarshal_WriteObjectToString(code, 2)
    finally:
        _restore_filenames(swapped)


cdef bint _has_code(tuple consts):
    for c in consts:
        if type(c) is _CodeType:
            return True
    return False


cdef object reduce_code(object pickler, object code):
    cdef CodeInfo info = code_info(code)
    return (_rebuild.code, (info.tag, info.data, info.filename))


# --------------------------------------------------------------------------------------------
# Functions

cdef bint _is_by_reference(object func, object qualname, object registered) except -1:
    module_name = _field((<PyFunctionObject*>func).func_module)
    if type(module_name) is not str or module_name in _DYNAMIC_MODULES:
        return False
    if type(qualname) is not str:
        return False
    # "<locals>" only follows a dot; most qualnames have none (a memchr, not a substring search).
    cdef Py_ssize_t dot = PyUnicode_FindChar(qualname, 46, 0, PY_SSIZE_T_MAX, 1)  # "."
    if dot >= 0 and "<locals>" in qualname:
        return False
    if registered and _modules.is_by_value_name(module_name, registered):
        return False
    cdef PyObject* module = PyDict_GetItemWithError(_sys_modules, module_name)
    if module is NULL:
        return False
    obj = <object>module
    cdef PyObject* found
    if dot < 0:  # a module-level function: one lookup, no path to build
        if type(obj) is _ModuleType and not (<str>qualname).startswith("__"):
            # What getattr finds first (ModuleType's own attributes are all dunders); only a
            # miss may still be answered by a module __getattr__.
            found = PyDict_GetItemWithError(<object>PyModule_GetDict(obj), qualname)
            if found is not NULL:
                return found is <PyObject*>func
        return getattr(obj, qualname, None) is func
    for part in _deferred.qualname_path(qualname):  # 3.15+: private names mangled
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is func


cdef object _submodules(CodeInfo info, dict modules, object func, object registered):
    cdef list found = None
    cdef object last_head = None
    cdef object last_name = None
    cdef bint no_locals = ((<PyFunctionObject*>func).func_closure is NULL
                           and (<PyFunctionObject*>func).func_defaults is NULL
                           and (<PyFunctionObject*>func).func_kwdefaults is NULL)
    cdef Py_ssize_t i = -1
    cdef tuple entry
    cdef PyObject* known
    for head, attrs in info.chains:
        i += 1
        if type(head) is str:
            if modules is None:
                continue
            known = PyDict_GetItemWithError(modules, head)
            name = None if known is NULL else <object>known
        else:
            # A cell or a parameter default, never for functions without cells or defaults;
            # resolved again only for another head than the last chain's (the chains of one
            # head, ``self.x.y`` and ``self.z`` of a method, usually follow each other).
            if no_locals:
                continue
            if last_head is None or not (head is last_head or head == last_head):
                last_name = _local_module_name(func, head, registered)
                last_head = head
            name = last_name
        if name is None:
            continue
        if info.dotted is None:  # made on the first pickle that resolves a chain's module
            info.dotted = [None] * len(info.chains)
        cached = info.dotted[i]
        if cached is None or ((<tuple>cached)[0] is not name and (<tuple>cached)[0] != name):
            cached = (name, _dotted_names(name, attrs))
            info.dotted[i] = cached
        entry = <tuple>cached
        for dotted in <tuple>entry[1]:
            if PyDict_GetItemWithError(_sys_modules, dotted) is NULL:
                break
            if found is None:
                found = [dotted]
            elif dotted not in found:
                found.append(dotted)
    return None if found is None else tuple(found)


# (module name, attrs) -> the dotted names: shared by every code object with that chain, so a
# fresh copy of a function (or another function using ``np.linalg``) finds its strings built
# and their hashes cached. Bounded like the code cache.
cdef dict _DOTTED = {}
cdef Py_ssize_t _DOTTED_MAX = 4096


cdef object _local_module_name(object func, tuple head, object registered):
    # _modules.local_module_name, with its commonest answer first: a closure cell that holds
    # something other than a module (``weights.sum()`` over an array) names no module.
    cdef PyObject* contents
    closure = _field((<PyFunctionObject*>func).func_closure)
    if head[0] == _HEAD_DEREF and closure is not None:
        freevars = (<object>(<PyFunctionObject*>func).func_code).co_freevars
        if head[1] in freevars:
            cell = (<tuple>closure)[freevars.index(head[1])]
            if type(cell) is _CellType:
                contents = PyCell_GET(cell)
                if contents is NULL or type(<object>contents) is not _ModuleType:
                    return None
    return _modules.local_module_name(func, head, registered)


cdef tuple _dotted_names(object name, tuple attrs):
    key = (name, attrs)
    cdef PyObject* found = PyDict_GetItemWithError(_DOTTED, key)
    if found is not NULL:
        return <tuple>found
    cdef list out = []
    for attr in attrs:
        # Interned (as the twin does): which submodule names the memo shares must not depend
        # on this cache's history.
        name = _intern(name + "." + attr)
        out.append(name)
    cdef tuple names = tuple(out)
    if len(_DOTTED) >= _DOTTED_MAX:
        _DOTTED.clear()
    _DOTTED[key] = names
    return names


cdef object _imported_name(object value, object registered):
    if type(value) is not _ModuleType:
        return None
    name = value.__name__
    if type(name) is not str or PyDict_GetItemWithError(_sys_modules, name) is not <PyObject*>value:
        return None
    if registered and _modules.is_by_value_name(name, registered):
        return None
    return name


cdef object _stable(object pickler, object value):
    t = type(value)
    if t is set or t is frozenset:
        return pickler._stable(value)
    return value


cdef object reduce_function(object pickler, object func):
    cdef PyFunctionObject* f = <PyFunctionObject*>func
    if type(pickler) is not Pickler:
        # A subclass may have skipped our __init__; the twin fails on the missing attribute
        # here (and _dump reports it), so this reads it too.
        pickler._tokens
    qualname = _field(f.func_qualname)
    # The routes other than (_FUNCTION, ...) below are the ones _seedable rules out for
    # dumps()'s template; a new one belongs there too (else dumps() notices and redoes).
    if _is_own_function(func):
        return qualname  # a reconstructor: saved as the global it is (see reducer_override)
    registered = pickler._by_value
    if _is_by_reference(func, qualname, registered):
        return NotImplemented
    code = <object>f.func_code
    if code is _SINGLEDISPATCH_CODE:
        return _wrappers.reduce_singledispatch(pickler, func)
    cdef CodeInfo info = code_info(code)
    globals_ = <object>f.func_globals
    if type(globals_) is not dict:
        globals_ = _deferred.plain_globals(globals_)
    cdef dict gdict = <dict>globals_
    cdef dict captured = None
    cdef dict modules = None
    cdef PyObject* found
    cdef list lazy_submodules = None
    for name in info.names:
        # Declared ``except? NULL`` by Cython: a raising key __eq__ propagates, as in the twin.
        found = PyDict_GetItemWithError(gdict, name)
        if found is not NULL:
            value = <object>found
            if type(value) is _LAZY_IMPORT_TYPE:  # 3.15+: a lazy import not yet resolved
                target = _deferred.plain_lazy_module(name, value)
                if target is not None and not (
                        registered and _modules.is_by_value_name(target, registered)):
                    if modules is None:
                        modules = {}
                    modules[name] = target.partition(".")[0]
                    if "." in target:
                        if lazy_submodules is None:
                            lazy_submodules = []
                        lazy_submodules.append(target)
                    continue
                value = _deferred.resolve_lazy(value)
            module_name = _imported_name(value, registered)
            if module_name is not None:
                if modules is None:
                    modules = {}
                modules[name] = module_name
                continue
            if captured is None:
                captured = {}
            captured[name] = _stable(pickler, value)
    closure = _field(f.func_closure)
    closure_arg = None
    cell_values = None
    empty = None
    if closure is not None:
        closure_arg, cell_values, empty = _closure_parts(pickler, func, closure)
    submods = None
    if info.chains:
        submods = _submodules(info, modules, func, registered)
    if lazy_submodules is not None:
        submods = _deferred.with_submodules(submods, lazy_submodules)
    type_params = None
    if _HAS_TYPE_PARAMS:
        type_params = func.__type_params__ or None
    extra = None if submods is None and type_params is None else (type_params, submods)
    name = _field(f.func_name)
    module = _field(f.func_module)
    defaults = _field(f.func_defaults)
    kwdefaults = _field(f.func_kwdefaults)
    # 3.14+: the function computing the annotations, when set, instead of their values
    # (see _deferred.py); always NULL before 3.14.
    if FFP_FUNC_ANNOTATE(func) is not NULL:
        annotations = _deferred.annotations_field(func)
    else:
        annotations = _field(f.func_annotations)
        if annotations is not None and type(annotations) is not dict:
            annotations = func.__annotations__  # 3.10 may hold a tuple until first access
    if annotations and type(annotations) is dict:
        # Names read only by string annotations, for typing.get_type_hints() after loading.
        named = _annotations.annotation_globals(annotations, gdict, info.names)
        if named is not None:
            if captured is None:
                captured = {}
            for ann_name, value in named:
                captured[ann_name] = _stable(pickler, value)
    attrs = _field(f.func_dict)
    doc = _field(f.func_doc)
    state = _trimmed((
        captured,
        modules,
        cell_values,
        None if defaults is None else tuple([_stable(pickler, d) for d in defaults]),
        None if doc is info.doc else (doc,),
        empty,
        None if kwdefaults is None else {k: _stable(pickler, v) for k, v in kwdefaults.items()},
        None if qualname == <object>FFP_CO_QUALNAME(code) else qualname,
        None if name == <object>(<_CodeStruct*><PyObject*>code).co_name else name,
        # Interned, as loading interns it: the name is one object wherever it is pickled.
        _boxed_module(module, gdict.get("__name__")),
        annotations or None,
        attrs or None,
        extra,
    ))
    args = (info.tag, info.data, info.filename, _globals_token(gdict), closure_arg)
    if not state:
        return (_FUNCTION, args)
    return (_FUNCTION, args, state, None, None, _FUNCTION)


cdef object _boxed_module(object module, object globals_name):
    # The module state field (see the twin).
    if type(module) is str:
        return None if module == globals_name else (_intern(module),)
    return (module,)


cdef tuple _trimmed(tuple state):
    cdef Py_ssize_t n = len(state)
    while n and state[n - 1] is None:
        n -= 1
    return state if n == len(state) else state[:n]


# id(globals dict) -> (name, package, token): the token holds only the dict's __name__ and
# __package__, so an entry is good for any dict at that id whose two values are the same objects
# (a dead dict's id reused by another passes only if the token is right for it too). A dict in
# a pickle is alive for the whole pickle (the memo holds its function), so within one pickle an
# id is one dict and every function of it shares one token, which the memo then writes once.
cdef dict _TOKEN_CACHE = {}
cdef Py_ssize_t _TOKEN_CACHE_MAX = 1024
cdef str _NAME_KEY = "__name__"
cdef str _PACKAGE_KEY = "__package__"


# The last entry used, checked before the dict: consecutive pickles usually come from one module
# (making, hashing and comparing the int key cost more than the rest of this function).
cdef Py_ssize_t _last_token_key = 0
cdef tuple _last_token_entry = None
cdef Py_ssize_t _token_cache_limit = _TOKEN_CACHE_MAX


cdef void _sweep_tokens() except *:
    # The cache is full. A token some pickler's memo holds stays: a pickle in progress must get
    # the token it already wrote for those globals, or its functions of one module would load
    # with two globals dicts (one not seeing what the other sets); emptying the whole cache
    # did exactly that to the pickle that filled it. The rest go, entries of dead dicts with
    # them; if most are in use, the next sweep waits until the cache has doubled.
    global _token_cache_limit, _last_token_key, _last_token_entry
    cdef list stale = []
    for key, entry in _TOKEN_CACHE.items():
        if _refcount(PyTuple_GET_ITEM(entry, 2)) <= 1:  # held by its entry alone
            stale.append(key)
    for key in stale:
        del _TOKEN_CACHE[key]
    _token_cache_limit = max(_TOKEN_CACHE_MAX, 2 * len(_TOKEN_CACHE))
    _last_token_key = 0
    _last_token_entry = None


def _after_fork_in_child():
    # A forked child starts with empty caches (see _fork): the code cache's and the token
    # cache's "in use" count references held by pickles of threads the child does not have.
    global _token_cache_limit, _last_token_key, _last_token_entry
    _code_cache_limits()
    _TOKEN_CACHE.clear()
    _token_cache_limit = _TOKEN_CACHE_MAX
    _last_token_key = 0
    _last_token_entry = None
    _DOTTED.clear()


_fork.in_child(_after_fork_in_child)


cdef dict _globals_token(dict gdict):
    global _last_token_key, _last_token_entry
    cdef Py_ssize_t address = <Py_ssize_t><PyObject*>gdict
    cdef PyObject* name = PyDict_GetItemWithError(gdict, _NAME_KEY)
    cdef PyObject* package = PyDict_GetItemWithError(gdict, _PACKAGE_KEY)
    cdef PyObject* found
    cdef tuple entry = None
    if address == _last_token_key:
        entry = _last_token_entry
    else:
        found = PyDict_GetItemWithError(_TOKEN_CACHE, address)
        if found is not NULL:
            entry = <tuple>found
    if entry is not None:
        _last_token_key = address
        _last_token_entry = entry
        if (<PyObject*>entry[0] is name or (name is NULL and entry[0] is _MISSING)) and (
                <PyObject*>entry[1] is package or (package is NULL and entry[1] is _MISSING)):
            return <dict>entry[2]
    # Interned, as the class skeleton's names are: equal names are then one object in every
    # process, so a pickle made again where this one is loaded shares them the same way.
    name_value = None if name is NULL else <object>name
    cdef dict token = {"__name__": _intern(name_value) if type(name_value) is str else name_value}
    if package is not NULL and <object>package is not None:
        token["__package__"] = <object>package
    if len(_TOKEN_CACHE) >= _token_cache_limit:
        _sweep_tokens()
    entry = (_MISSING if name is NULL else <object>name,
             _MISSING if package is NULL else <object>package, token)
    _TOKEN_CACHE[address] = entry
    _last_token_key = address
    _last_token_entry = entry
    return token


include "_cells.pxi"


cdef tuple _closure_parts(object pickler, object func, tuple closure):
    cdef CellTable seen = pickler._closure_cells
    cdef Py_ssize_t n = len(closure)
    cdef list values = []
    cdef list empties = None
    cdef list shared = None
    cdef Py_ssize_t i, j
    cdef Py_ssize_t classdict_at = -1
    cdef PyObject* owner
    cdef PyObject* contents
    for i in range(n):
        cell = closure[i]
        if type(cell) is not _CellType:
            raise TypeError(f"{func.__qualname__!r}.__closure__ holds a {type(cell).__name__}, "
                            f"not a cell")
        contents = PyCell_GET(cell)
        if contents is NULL:
            values.append(None)
            if empties is None:
                empties = []
            empties.append(i)
            continue
        value = <object>contents
        if type(value) is dict and func.__code__.co_freevars[i] == _CLASSDICT_CELL:
            values.append(_classdict_snapshot(pickler, value, code_info(func.__code__).names))
            classdict_at = i  # never shared through the table
            continue
        values.append(_stable(pickler, value))
    cdef tuple empty_at = None if empties is None else tuple(empties)
    if seen.empty() and classdict_at < 0 and n <= 16:
        for i in range(1, n):
            for j in range(i):
                if closure[i] is closure[j]:
                    break
            else:
                continue
            break
        else:
            seen.pending_func = func
            seen.pending_closure = closure
            return n, tuple(values), empty_at
    seen.enter_pending()
    seen.owners.append(func)
    cdef _CellSlot* slot
    for i in range(n):
        if i == classdict_at:
            continue
        cell = closure[i]
        slot = seen.find(<PyObject*>cell)
        if slot is NULL:
            seen.put(<PyObject*>cell, <PyObject*>func, i)
        else:
            if shared is None:
                shared = [None] * n
            # A cell of an earlier function, or a cell pickled on its own earlier.
            if slot.index >= 0:
                shared[i] = CellRef(<object>slot.owner, slot.index)
            else:
                shared[i] = <object>slot.owner
    closure_arg = n if shared is None else tuple(shared)
    return closure_arg, tuple(values), empty_at


class CellRef:
    """Stands for a cell already created in this pickle as ``func.__closure__[index]``."""

    __slots__ = ("func", "index")

    def __init__(self, func, index):
        self.func = func
        self.index = index


class StableSet:
    """Stands for a set or frozenset whose elements must be written in a stable order."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _stable_sort_key(value):
    return (type(value).__qualname__, repr(value))


cdef object reduce_stable_set(object pickler, object wrapper):
    value = wrapper.value
    try:
        items = sorted(value)
    except TypeError:
        items = sorted(value, key=_stable_sort_key)
    return (type(value), (items,))


cdef object reduce_cell(object pickler, object cell):
    cdef CellTable seen = pickler._closure_cells
    seen.enter_pending()
    cdef _CellSlot* slot = seen.find(<PyObject*>cell)
    if slot is not NULL:
        if slot.index < 0:
            # Reduced again while written (its filling refers to it): only without a memo.
            raise PicklingError(_errors.FAST_CELL)
        return (_rebuild.closure_cell, (<object>slot.owner, slot.index))
    seen.owners.append(cell)
    seen.put(<PyObject*>cell, <PyObject*>cell, -1)
    try:
        value = cell.cell_contents
    except ValueError:
        return (_rebuild.make_cell, ())
    return (_rebuild.make_cell, (), (pickler._stable(value),), None, None, _rebuild.fill_cell)


# --------------------------------------------------------------------------------------------
# The pickler

cdef dict _SPECIAL_TYPES = _classes.SPECIAL_TYPES
# The type of the compiled reconstructors, taken from one of them: each Cython release names
# its own function type, and a build may mix releases (pip's isolated build and a build_ext).
cdef object _CYFUNCTION_TYPE = type(_FUNCTION)
cdef object _CellRef = CellRef
cdef object _StableSet = StableSet
cdef dict _SHARED_DISPATCH = _reducers.DISPATCH
# The last type whose instances reducer_override handed back to the C pickler. A list of
# 100,000 plain instances asks about one type 100,000 times, and the dispatch-table miss was
# half of what each question cost. No reference is held: the version tag tells a live type
# from a new one at a freed one's address (tags are never reused; 0 means none assigned).
cdef PyObject* _plain_type = NULL
cdef unsigned int _plain_tag = 0


class Pickler(pickle.Pickler):
    """A C ``pickle.Pickler`` that also pickles functions and classes by value.

    Takes ``(file, protocol=None, buffer_callback=None)``; ``None`` means
    :data:`DEFAULT_PROTOCOL`. Everything is reduced through :meth:`reducer_override`, so the
    memo, ``persistent_id`` (defined by subclasses) and ``buffer_callback`` of this pickler
    apply to everything inside a function.
    """

    def __init__(self, file, protocol=None, buffer_callback=None):
        if protocol is None:
            protocol = DEFAULT_PROTOCOL
        super().__init__(file, protocol, buffer_callback=buffer_callback)
        self._protocol = DEFAULT_PROTOCOL if protocol < 0 else protocol
        self._tokens = {}
        self._closure_cells = CellTable()
        self._by_value = _modules.BY_VALUE

    def reducer_override(self, obj):
        # Ordered by frequency; "not ours" (any plain instance) must fall through cheaply.
        t = type(obj)
        if t is _FunctionType:
            return reduce_function(self, obj)
        if t is _CodeType:
            return reduce_code(self, obj)
        if t is _CellType:
            return reduce_cell(self, obj)
        if t is _StableSet:
            return reduce_stable_set(self, obj)
        if t is _CellRef:
            return (_rebuild.closure_cell, (obj.func, obj.index))
        if t is _CYFUNCTION_TYPE:
            if obj in _OWN_FUNCTIONS:
                # A compiled reconstructor, met once per pickle: naming the global here skips
                # the C pickler's slower __reduce_ex__ route to the same bytes.
                return obj.__qualname__
        cdef unsigned int tag = (<_VersionedType*>t).tp_version_tag
        if <PyObject*>t is _plain_type and tag == _plain_tag and tag != 0:
            return NotImplemented
        cdef PyObject* reducer = PyDict_GetItemWithError(_SHARED_DISPATCH, t)
        if reducer is not NULL:
            return (<object>reducer)(self, obj)
        if PyType_Check(obj):
            if not ((<PyTypeObject*>obj).tp_flags & Py_TPFLAGS_HEAPTYPE):
                # A static (C) type: never by value; by name unless it has a special form.
                reducer = PyDict_GetItemWithError(_SPECIAL_TYPES, obj)
                return NotImplemented if reducer is NULL else <object>reducer
            return _classes.reduce_class(self, obj)
        if PyModule_Check(obj):
            name = obj.__name__
            if (type(name) is str and not self._by_value
                    and PyDict_GetItemWithError(_sys_modules, name) is <PyObject*>obj):
                # The common case, inline: an imported module, by reference.
                return (_IMPORT_MODULE, (name,))
            return _modules.reduce_module(self, obj)
        # Everything above that led here depends on the type alone.
        global _plain_type, _plain_tag
        _plain_type = <PyObject*>t
        _plain_tag = tag
        return NotImplemented

    def dump(self, obj):
        """Write the pickle of ``obj``; too-deep nesting raises :class:`PicklingError`."""
        _dump(self, obj)

    def clear_memo(self):
        """Forget what was pickled so far (the next dump starts a new pickle's memo)."""
        _clear(self)

    def _globals_token(self, gdict):
        """The dict that stands for ``gdict`` in this pickle (see the twin)."""
        return _globals_token(gdict)

    def _stable(self, value):
        """``value``, or a stand-in that writes a set's elements in a stable order."""
        t = type(value)
        if t is set or t is frozenset:
            key = id(value)
            wrapper = self._tokens.get(key)
            if wrapper is None:
                wrapper = _StableSet(value)
                self._tokens[key] = wrapper
                self._tokens[~key] = value
            return wrapper
        return value


# Hand the class reducer the plain pickler of this implementation (for class digests).
Pickler._core_class = Pickler
Pickler._digesting = False  # True only on the pickler that takes a class digest

cdef object _C_DUMP = pickle.Pickler.dump
cdef object _C_CLEAR_MEMO = pickle.Pickler.clear_memo


cdef _dump(object pickler, object obj):
    pickler._by_value = _registered()
    _run_dump(pickler, obj)


cdef _run_dump(object pickler, object obj):
    # The dump itself, ``pickler._by_value`` already set for it.
    try:
        _C_DUMP(pickler, obj)
    except _MoreFrames:
        raise  # not an error: dumps() makes the pickle again the plain way
    except Exception as exc:
        if _errors.hit_recursion_limit(exc):
            err = PicklingRecursionError(_errors.recursion_message(pickler))
            _errors.note_failure(err, obj, type(pickler), pickler._protocol)
            raise err from exc
        if "_protocol" not in getattr(pickler, "__dict__", ()):
            # A subclass whose __init__ never called ours: the stdlib's contract is a
            # PicklingError on dump, whatever else broke first.
            raise _uninitialized(pickler) from exc
        _errors.note_failure(exc, obj, type(pickler), pickler._protocol)
        raise


def _uninitialized(pickler):
    name = type(pickler).__qualname__
    return PicklingError(
        f"Pickler.__init__() was not called by {name}.__init__(); call "
        f"super().__init__(file, protocol) there before dump()")


cdef _clear(object pickler):
    _C_CLEAR_MEMO(pickler)
    cdef dict tokens = pickler._tokens
    cdef CellTable cells = pickler._closure_cells
    if tokens:
        tokens.clear()
    if not cells.empty():
        cells.clear()
    if _CODE_OVERFLOW:
        _drain_overflow()


# One reusable pickler per thread for dumps() at the default protocol: building a pickler
# costs about as much as pickling a small lambda. It writes into a list (one call per frame),
# which is cheaper than a BytesIO to fill, read and reset. It is kept in the thread state's
# dict, which goes with the thread: a threading.local attribute costs five times the lookup.
cdef extern from "Python.h":
    PyObject* PyThreadState_GetDict()

cdef str _SLOT_KEY = _intern("fastfnpickle._core.dumps slot")


cdef dict _thread_dict():
    cdef PyObject* d = PyThreadState_GetDict()
    if d is NULL:  # only without a thread state, which a Python caller always has
        raise RuntimeError("fastfnpickle.dumps() called without a Python thread state")
    return <dict>d


cdef Py_ssize_t _REUSE_LIMIT = 16384


class _MoreFrames(Exception):
    """Raised by a one-frame sink at its second write (see ``_dump_seeded``)."""


cdef class _Sink:
    """A write-only file for the reusable pickler."""

    cdef public list chunks
    cdef bint one_frame

    def __init__(self):
        self.chunks = []
        self.one_frame = False

    def write(self, data):
        if self.one_frame and self.chunks:
            raise _MoreFrames()
        self.chunks.append(data)


# --------------------------------------------------------------------------------------------
# dumps() of one function: the reconstructor's global from a template
#
# Every by-value function pickle starts with the same global, ``fastfnpickle._rebuild.function``,
# and the C pickler's save_global imports the module to check it each time: about a fifth of
# the instructions of pickling a small lambda. Here the reusable pickler starts from a memo that
# already holds exactly what writing that global leaves in it (taken from a real dump at import),
# so it writes a memo reference instead; the template's bytes then replace that reference in
# the first frame. The memo indices that follow are the same, so the result is byte for byte
# what the plain route writes, as long as the pickle is one frame: frames are cut where their
# content passes 64 KiB, and the shorter first frame would move the cut. A pickle that needs a
# second frame therefore stops at the sink's second write and is made again the plain way (its
# reducers run twice; the first pass wrote at most about one frame).

cdef object _SEED_MEMO = None   # the template pickler's memo (set as a copy)
cdef bytes _SEED_GLOBAL = None  # the bytes of the global, as the plain route writes them
cdef bytes _SEED_REF = None     # what a seeded pickler writes for the reconstructor instead
cdef unsigned char _FRAME = pickle.FRAME[0]
cdef Py_ssize_t _FRAME_HEAD = 11  # PROTO n, FRAME and its 8-byte length


cdef tuple _template():
    # A dump of the reconstructor alone, on a fresh pickler: PROTO, FRAME, the global, STOP.
    sink = _Sink()
    pickler = Pickler(sink)
    _dump(pickler, _FUNCTION)
    out = sink.chunks[0] if len(sink.chunks) == 1 else b""
    head = pickle.PROTO + bytes([DEFAULT_PROTOCOL])
    if (len(out) <= _FRAME_HEAD or not out.startswith(head) or out[2] != _FRAME
            or int.from_bytes(out[3:_FRAME_HEAD], "little") != len(out) - _FRAME_HEAD
            or not out.endswith(pickle.STOP)):
        return None
    memo = pickler.memo
    # The same dump from the seeded memo: PROTO, the memo reference, STOP (too short to frame).
    sink = _Sink()
    seeded = Pickler(sink)
    seeded.memo = memo
    _dump(seeded, _FUNCTION)
    ref = sink.chunks[0] if len(sink.chunks) == 1 else b""
    if not (ref.startswith(head) and ref.endswith(pickle.STOP) and 2 < len(ref) - 1 <= 6):
        return None
    return memo, out[_FRAME_HEAD:len(out) - 1], ref[2:len(ref) - 1]


cdef bint _seedable(object func, object registered) except -1:
    # True when reduce_function will reduce ``func`` by value with _FUNCTION as the callable.
    if _is_own_function(func):
        return False
    if <object>(<PyFunctionObject*>func).func_code is _SINGLEDISPATCH_CODE:
        return False
    return not _is_by_reference(func, _field((<PyFunctionObject*>func).func_qualname),
                                registered)


cdef bytes _dump_seeded(object pickler, _Sink sink, object func):
    """The pickle of ``func`` from the seeded memo, or None if it must be made the plain way."""
    sink.one_frame = True
    try:
        _run_dump(pickler, func)
    except _MoreFrames:
        return None
    finally:
        sink.one_frame = False
    cdef bytes data = sink.chunks[0]
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t g = PyBytes_GET_SIZE(_SEED_GLOBAL)
    cdef Py_ssize_t r = PyBytes_GET_SIZE(_SEED_REF)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    if n < _FRAME_HEAD + r or p[2] != _FRAME:
        return None
    cdef unsigned long long frame = 0
    cdef int i
    for i in range(8):
        frame |= (<unsigned long long>p[3 + i]) << (8 * i)
    if (<Py_ssize_t>frame != n - _FRAME_HEAD
            or memcmp(p + _FRAME_HEAD, PyBytes_AS_STRING(_SEED_REF), r) != 0):
        return None
    frame += g - r
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + g - r)
    cdef unsigned char* q = <unsigned char*>PyBytes_AS_STRING(out)
    memcpy(q, p, 3)
    for i in range(8):
        q[3 + i] = (frame >> (8 * i)) & 0xFF
    memcpy(q + _FRAME_HEAD, PyBytes_AS_STRING(_SEED_GLOBAL), g)
    memcpy(q + _FRAME_HEAD + g, p + _FRAME_HEAD + r, n - _FRAME_HEAD - r)
    return out


cdef class _Buffers:
    """The reusable pickler's buffer_callback: hands each buffer to this dumps() call's
    callback, and without one answers "in band", which is what a pickler without a callback
    writes. (A pickler takes its callback only when built.)"""

    cdef object target

    def __call__(self, buffer):
        if self.target is None:
            return True
        return self.target(buffer)


cdef class _Slot:
    """This thread's reusable pickler for dumps()."""

    cdef _Sink sink
    cdef _Buffers buffers
    cdef object pickler
    cdef dict tokens  # the pickler's own, held here to be emptied without attribute lookups
    cdef CellTable cells
    cdef bint busy
    cdef bint seeded  # the memo holds the seed (and nothing else): see _dump_seeded
    # What the pickler's _by_value holds: set again only when the registry changed (an
    # attribute store per dumps() cost as much as the registry lookup and the marshalling of
    # a lambda's names together).
    cdef object by_value

    def __init__(self):
        self.sink = _Sink()
        self.buffers = _Buffers()
        self.renew()
        self.busy = False

    cdef renew(self):
        # The old pickler is freed here (the caller holds no other reference), its memo with
        # it, so what the memo held is out of use before the code cache's overflow is drained.
        self.pickler = Pickler(self.sink, None, buffer_callback=self.buffers)
        self.tokens = self.pickler._tokens
        self.cells = self.pickler._closure_cells
        self.by_value = self.pickler._by_value
        self.seeded = False

    cdef inline void registry(self, object registered) except *:
        if registered is not self.by_value:
            self.pickler._by_value = registered
            self.by_value = registered


def dumps(obj, protocol=None, buffer_callback=None):
    """The pickle of ``obj`` as bytes (see ``fastfnpickle.dumps``)."""
    if not (protocol is None or protocol == DEFAULT_PROTOCOL):
        buf = io.BytesIO()
        _dump(Pickler(buf, protocol, buffer_callback=buffer_callback), obj)
        return buf.getvalue()
    cdef dict tdict = _thread_dict()
    cdef PyObject* held = PyDict_GetItemWithError(tdict, _SLOT_KEY)
    cdef _Slot slot = None if held is NULL else <_Slot>held
    if slot is None or slot.busy:
        # First use on this thread, or a dumps() nested inside another one (a __reduce__
        # that calls dumps): a private pickler.
        slot = _Slot()
        if held is NULL:
            tdict[_SLOT_KEY] = slot
    cdef list chunks = slot.sink.chunks
    pickler = slot.pickler
    cdef bint seeded = False
    registered = _registered()
    if _SEED_MEMO is not None and type(obj) is _FunctionType:
        try:
            seeded = _seedable(obj, registered)
        except Exception:
            pass  # the plain route meets the same error, and reports where it is
    slot.registry(registered)
    slot.busy = True
    slot.buffers.target = buffer_callback
    try:
        if seeded:
            if not slot.seeded:
                pickler.memo = _SEED_MEMO
            slot.seeded = False  # until the memo is set again below
            data = _dump_seeded(pickler, slot.sink, obj)
            if data is not None:
                return data
            seeded = False
            _clear(pickler)
            chunks.clear()
        elif slot.seeded:
            _C_CLEAR_MEMO(pickler)
            slot.seeded = False
        _run_dump(pickler, obj)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        # Clearing a memo costs time in proportion to its largest size ever, so after a big
        # pickle the thread gets a fresh pickler instead; otherwise drop the memo's references
        # to the user's objects now (a seeded dump by setting the seed again, which also
        # readies the next one).
        if len(chunks) > 1 or (chunks and len(chunks[0]) > _REUSE_LIMIT):
            pickler = None  # see _Slot.renew
            slot.renew()
        else:
            if seeded:
                pickler.memo = _SEED_MEMO
                slot.seeded = True
            else:
                _C_CLEAR_MEMO(pickler)
            if slot.tokens:
                slot.tokens.clear()
            if not slot.cells.empty():
                slot.cells.clear()
        chunks.clear()
        slot.buffers.target = None
        slot.busy = False
        if _CODE_OVERFLOW:
            _drain_overflow()  # this pickle's entries are out of use now


_seed = _template()
if _seed is not None:
    _SEED_MEMO, _SEED_GLOBAL, _SEED_REF = _seed
del _seed


def _seeded():
    """Whether dumps() writes the reconstructor from the template (for the tests)."""
    return _SEED_MEMO is not None
