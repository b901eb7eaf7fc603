"""Pure-Python twin of ``_core.pyx``: the pickling hot path.

Same names, same behaviour and the same output bytes as the compiled core; the parity tests
hold both to that. Everything here must stay portable 1:1 to Cython: plain functions, explicit
tuples, exact type checks.
"""

import io
import marshal
import pickle
import sys
import threading
from pickle import PicklingError
from types import CellType, CodeType, FunctionType, ModuleType
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from . import (
    _annotations,
    _classes,
    _deferred,
    _errors,
    _fork,
    _modules,
    _rebuild,
    _reducers,
    _wrappers,
)
from . import _bytecode as B
from ._codecheck import CO_HAS_DOCSTRING
from ._format import (
    CODE_TAG,
    CODE_TAG_SETS,
    FROZENSET_MARK,
    SLICE_MARK,
    PicklingRecursionError,
    seal,
)

DEFAULT_PROTOCOL: int = pickle.HIGHEST_PROTOCOL

# A function's module names that never resolve to an importable module.
_DYNAMIC_MODULES = frozenset({"__main__", "__mp_main__", None})

_dict_get = dict.get
_LAZY_IMPORT_TYPE = _deferred.LAZY_IMPORT_TYPE  # None before 3.15: no type is None
_MISSING = object()
_SINGLEDISPATCH_CODE = _wrappers.SINGLEDISPATCH_CODE


# --------------------------------------------------------------------------------------------
# Per-code-object analysis, cached: code objects are immutable, so everything derived from one
# (the encoded bytes, the globals it reads, the attribute chains that may name submodules)
# is computed once per code object (while it stays among the most recently cached).

class CodeInfo:
    """What pickling needs to know about one code object."""

    __slots__ = ("tag", "data", "filename", "names", "chains", "doc")

    def __init__(self, tag: str, data: bytes, filename: Any, names: Tuple[str, ...],
                 chains: Tuple[Tuple[str, Tuple[str, ...]], ...], doc: Any) -> None:
        self.tag = tag
        self.data = data
        # Sent beside the marshal bytes, which hold "" instead: the pickle's memo then writes
        # it once for all the functions of one source file.
        self.filename = filename
        self.names = names
        self.chains = chains
        self.doc = doc  # the docstring a function made from this code object gets


# id(code) -> (code, info). The entry holds the code object, so its id cannot be reused while
# cached; bounded, and emptied when full (cheaper per lookup than weak references).
_CODE_CACHE: Dict[int, Tuple[CodeType, CodeInfo]] = {}
_CODE_CACHE_MAX = 4096


@_fork.in_child
def _after_fork_in_child() -> None:
    # A forked child starts with an empty cache, as the compiled core's does (see _fork).
    _CODE_CACHE.clear()


def code_info(code: CodeType) -> CodeInfo:
    """The cached :class:`CodeInfo` of ``code``."""
    key = id(code)
    entry = _CODE_CACHE.get(key)
    if entry is not None and entry[0] is code:
        return entry[1]
    names: List[str] = []
    chains: List[Tuple[str, Tuple[str, ...]]] = []
    has_sets = _scan_code(code, names, chains, set(), set())
    filename = code.co_filename
    # marshal format 2 writes no back-references: format 3+ flags objects by their reference
    # count, so its bytes change when anything else holds a constant.
    data = seal(marshal.dumps(_portable(code, filename, has_sets), 2))
    info = CodeInfo(CODE_TAG_SETS if has_sets else CODE_TAG, data, filename,
                    tuple(names), tuple(chains), _derived_doc(code))
    if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
        _CODE_CACHE.clear()
    _CODE_CACHE[key] = (code, info)
    return info


def _derived_doc(code: CodeType) -> Any:
    # Ask the interpreter rather than restating its rule, which varies between versions; but
    # not for a code object flagged as having a docstring and holding no constants, which
    # crashes 3.14 (see _codecheck.CO_HAS_DOCSTRING): it has none.
    if code.co_flags & CO_HAS_DOCSTRING and not code.co_consts:
        return None
    cells = tuple([CellType() for _ in code.co_freevars]) or None
    return FunctionType(code, {}, None, None, cells).__doc__


def _add_chain(chains: List[Tuple[Any, Tuple[str, ...]]], seen_chains: set,
               head: Any, attrs: List[str]) -> None:
    chain = (head, tuple(attrs))
    if chain not in seen_chains:
        seen_chains.add(chain)
        chains.append(chain)


def _name_at(code: CodeType, co_names: Tuple[str, ...], i: int) -> str:
    # Bytecode is not checked against co_names when a code object is built by hand.
    if i >= len(co_names):
        raise PicklingError(
            f"cannot pickle code object {code.co_name!r}: its bytecode refers to name #{i}, "
            f"but co_names holds {len(co_names)}")
    return co_names[i]


_PENDING = object()  # a parameter or cell head whose name is not looked up yet


def _local_head(code: CodeType, kind: Any, arg: int) -> Tuple[Any, str]:
    if kind is B.HEAD_FAST:
        return (kind, code.co_varnames[arg])
    return (kind, B.deref_name(code, arg))


def _scan_code(code: CodeType, names: List[str], chains: List[Tuple[Any, Tuple[str, ...]]],
               seen_names: set, seen_chains: set, top: bool = True) -> bool:
    """Collect global names read or written by ``code`` and the code nested in it.

    Also collects attribute chains that start at a global (``os.path.join`` ->
    ``("os", ("path", "join"))``), at a cell variable (head ``(HEAD_DEREF, name)``) or at a
    parameter of the outermost code (head ``(HEAD_FAST, name)``): the candidates for
    submodules to import on load. Returns whether a frozenset constant occurs anywhere (its
    bytes need sorting).
    """
    co = code.co_code
    co_names = code.co_names
    n = len(co)
    ext = 0
    head: Any = None
    # A local head's name is looked up only if an attribute follows (most loads have none).
    pending_kind: Any = None
    pending_arg = 0
    attrs: List[str] = []
    # Parameters come first among the locals; only the outermost code's have known values.
    nparams = code.co_argcount + code.co_kwonlyargcount if top else 0
    i = 0
    while i < n:
        op = co[i]
        arg = co[i + 1] | ext
        i += 2
        if op == B.EXTENDED_ARG:
            ext = arg << 8
            continue
        ext = 0
        if op == B.CACHE:
            continue
        if op == B.LOAD_ATTR:
            if head is not None:
                if head is _PENDING:
                    head = _local_head(code, pending_kind, pending_arg)
                attrs.append(_name_at(code, co_names, arg >> B.LOAD_ATTR_SHIFT))
            continue
        if op == B.LOAD_METHOD:
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
        if op == B.LOAD_GLOBAL:
            name = _name_at(code, co_names, arg >> B.LOAD_GLOBAL_SHIFT)
            head = name
        elif op == B.LOAD_NAME or op == B.LOAD_FROM_DICT_OR_GLOBALS:
            name = _name_at(code, co_names, arg)
            head = name
        elif op == B.STORE_GLOBAL or op == B.DELETE_GLOBAL:
            name = _name_at(code, co_names, arg)
        elif op == B.LOAD_FAST or op == B.LOAD_FAST_CHECK or op == B.LOAD_FAST_BORROW:
            if arg < nparams:
                head, pending_kind, pending_arg = _PENDING, B.HEAD_FAST, arg
            continue
        elif op == B.LOAD_FAST_LOAD_FAST or op == B.LOAD_FAST_BORROW_LOAD_FAST_BORROW:
            if arg & 15 < nparams:  # the second local is the one an attribute applies to
                head, pending_kind, pending_arg = _PENDING, B.HEAD_FAST, arg & 15
            continue
        elif (op == B.LOAD_DEREF or op == B.LOAD_CLASSDEREF
              or op == B.LOAD_FROM_DICT_OR_DEREF):
            head, pending_kind, pending_arg = _PENDING, B.HEAD_DEREF, arg
            continue
        else:
            continue
        if name not in seen_names:
            seen_names.add(name)
            names.append(name)
    if head is not None and attrs:
        _add_chain(chains, seen_chains, head, attrs)
    has_sets = False
    for const in code.co_consts:
        t = type(const)
        if t is CodeType:
            if _scan_code(const, names, chains, seen_names, seen_chains, False):
                has_sets = True
        elif t is frozenset or t is slice or (t is tuple and _has_frozenset(const)):
            has_sets = True
    return has_sets


def _has_frozenset(value: tuple) -> bool:
    for v in value:
        t = type(v)
        if t is frozenset or (t is tuple and _has_frozenset(v)):
            return True
    return False


def _sort_key(value: Any) -> bytes:
    return marshal.dumps(value, 2)


def _portable(value: Any, filename: str, sort_sets: bool) -> Any:
    """``value`` as it is marshalled: ``filename`` blanked in its code objects and, with
    ``sort_sets``, frozenset constants as marked, sorted tuples (their iteration order follows
    string hashes, which vary by process)."""
    t = type(value)
    if t is CodeType:
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


def _has_code(consts: tuple) -> bool:
    for c in consts:
        if type(c) is CodeType:
            return True
    return False


def _pickled_info(pickler: "Pickler", code: CodeType) -> CodeInfo:
    # One CodeInfo (so one bytes object) per code object for as long as the pickler's memo
    # lasts: the cache may be emptied in the middle of a pickle, and the same code met again
    # with new bytes would be written twice. (The compiled core keeps the entries a memo uses
    # in its cache instead; either way a pickle writes each code object once.)
    key = id(code)
    info = pickler._codes.get(key)
    if info is None:
        info = pickler._codes[key] = code_info(code)
    return info


def reduce_code(pickler: "Pickler", code: CodeType) -> tuple:
    """Reduce value of a code object (version-tagged marshal bytes)."""
    info = _pickled_info(pickler, code)
    return (_rebuild.code, (info.tag, info.data, info.filename))


# --------------------------------------------------------------------------------------------
# Functions

def _is_by_reference(func: FunctionType, registered: FrozenSet[str]) -> bool:
    """Whether ``func`` can be found by ``module.qualname`` import on the loading side."""
    module_name = func.__module__
    if type(module_name) is not str or module_name in _DYNAMIC_MODULES:
        return False
    qualname = func.__qualname__
    if type(qualname) is not str or "<locals>" in qualname:
        return False
    if registered and _modules.is_by_value_name(module_name, registered):
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return False
    obj: Any = module
    for part in _deferred.qualname_path(qualname):  # 3.15+: private names mangled
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is func


def _submodules(chains: Tuple[Tuple[Any, Tuple[str, ...]], ...],
                modules: Optional[Dict[str, str]], func: FunctionType,
                registered: FrozenSet[str]) -> Optional[tuple]:
    """Names of submodules reached through attributes of modules held by globals, closure
    cells or parameter defaults (``os.path.join`` with only ``os`` global), to be imported on
    load."""
    found: Optional[List[str]] = None
    loaded = sys.modules
    local: Any = None
    for head, attrs in chains:
        if type(head) is str:
            if modules is None:
                continue
            name = modules.get(head)
        else:
            # A cell or a parameter default: resolved once per head (every ``self.x.y`` of a
            # method shares one), and never for functions without cells or defaults.
            if local is None:
                if (func.__closure__ is None and func.__defaults__ is None
                        and func.__kwdefaults__ is None):
                    local = False
                else:
                    local = {}
            if local is False:
                continue
            name = local.get(head, _MISSING)
            if name is _MISSING:
                name = local[head] = _modules.local_module_name(func, head, registered)
        if name is None:
            continue
        for attr in attrs:
            # Interned: equal submodule names are one object, whichever function found them,
            # so the memo shares them the same way in both twins (the compiled one caches them).
            name = sys.intern(name + "." + attr)
            if name not in loaded:
                break
            if found is None:
                found = [name]
            elif name not in found:
                found.append(name)
    return None if found is None else tuple(found)


def _imported_name(value: Any, registered: FrozenSet[str]) -> Optional[str]:
    """The name a module global is imported by on load, or None to pickle it as a value."""
    if type(value) is not ModuleType:
        return None
    name = value.__name__
    if type(name) is not str or sys.modules.get(name) is not value:
        return None
    if registered and _modules.is_by_value_name(name, registered):
        return None
    return name


def reduce_function(pickler: "Pickler", func: FunctionType) -> Any:
    """Reduce value of a function pickled by value, or NotImplemented for by-reference ones.

    ``(function, (tag, code_bytes, globals, closure), state, None, None, function)``: the
    arguments hold nothing of the user's, so the function is created and memoized before any
    captured value is pickled, and cycles through globals or cells resolve through the memo.
    """
    if func in _rebuild.OWN_FUNCTIONS:
        return func.__qualname__  # a reconstructor: saved as the global it is
    if _is_by_reference(func, pickler._by_value):
        return NotImplemented
    code = func.__code__
    if code is _SINGLEDISPATCH_CODE:
        return _wrappers.reduce_singledispatch(pickler, func)
    info = _pickled_info(pickler, code)
    gdict = func.__globals__
    if type(gdict) is not dict:
        gdict = _deferred.plain_globals(gdict)
    stable = pickler._stable
    captured: Optional[Dict[str, Any]] = None
    modules: Optional[Dict[str, str]] = None
    registered = pickler._by_value
    lazy_submodules: Optional[List[str]] = None
    for name in info.names:
        # As a plain dict, like the C lookups of the compiled core (and of function calls):
        # a dict subclass's overrides are not what the function sees at run time either.
        value = _dict_get(gdict, name, _MISSING)
        if value is not _MISSING:
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
            # Imported modules travel as names (no global to look up per pickle).
            module_name = _imported_name(value, registered)
            if module_name is not None:
                if modules is None:
                    modules = {}
                modules[name] = module_name
                continue
            if captured is None:
                captured = {}
            captured[name] = stable(value)
    annotations = _deferred.annotations_field(func)  # 3.14+: may be __annotate__
    if annotations and type(annotations) is dict:
        # Names read only by string annotations, for typing.get_type_hints() after loading.
        named = _annotations.annotation_globals(annotations, gdict, info.names)
        if named is not None:
            if captured is None:
                captured = {}
            for name, value in named:
                captured[name] = stable(value)
    closure = func.__closure__
    closure_arg: Any = None
    cell_values: Optional[tuple] = None
    empty: Optional[tuple] = None
    if closure is not None:
        closure_arg, cell_values, empty = _closure_parts(pickler, func, closure)
    submods = None
    if info.chains:
        submods = _submodules(info.chains, modules, func, registered)
    if lazy_submodules is not None:
        submods = _deferred.with_submodules(submods, lazy_submodules)
    type_params = getattr(func, "__type_params__", None) or None
    extra = None if submods is None and type_params is None else (type_params, submods)
    name = func.__name__
    qualname = func.__qualname__
    module = func.__module__
    defaults = func.__defaults__
    kwdefaults = func.__kwdefaults__
    doc = func.__doc__
    state = _trimmed((
        captured,
        modules,
        cell_values,
        None if defaults is None else tuple([stable(d) for d in defaults]),
        None if doc is info.doc else (doc,),
        empty,
        None if kwdefaults is None else {k: stable(v) for k, v in kwdefaults.items()},
        None if qualname == _default_qualname(code) else qualname,
        None if name == code.co_name else name,
        # Interned, as loading interns it: the name is one object wherever it is pickled.
        _boxed_module(module, _dict_get(gdict, "__name__")),
        annotations or None,
        func.__dict__ or None,
        extra,
    ))
    fn = _rebuild.function
    args = (info.tag, info.data, info.filename, pickler._globals_token(gdict), closure_arg)
    if not state:
        # Nothing beyond code, globals and cells: no state call on load.
        return (fn, args)
    return (fn, args, state, None, None, fn)


def _boxed_module(module: Any, globals_name: Any) -> Optional[tuple]:
    """The ``module`` state field: None when the globals' ``__name__`` gives it."""
    if type(module) is str:
        return None if module == globals_name else (sys.intern(module),)
    return (module,)


def _trimmed(state: tuple) -> tuple:
    """``state`` without its trailing Nones (see ``_format.STATE_FIELDS``)."""
    n = len(state)
    while n and state[n - 1] is None:
        n -= 1
    return state[:n]


def _closure_parts(pickler: "Pickler", func: FunctionType, closure: tuple) -> tuple:
    """The closure argument (cell count, or cells shared with earlier functions) and values."""
    seen = pickler._closure_cells
    values: List[Any] = []
    empties: Optional[List[int]] = None
    shared: Optional[List[Any]] = None
    i = 0
    for cell in closure:
        try:
            value = cell.cell_contents
            empty = False
        except ValueError:  # empty cell
            value = None
            empty = True
        if not empty and type(value) is dict and \
                func.__code__.co_freevars[i] == _deferred.CLASSDICT_CELL:
            # A class namespace read by annotation code: a cell of its own (not shared).
            names = code_info(func.__code__).names
            values.append(_deferred.classdict_snapshot(pickler, value, names))
            i += 1
            continue
        key = id(cell)
        owner = seen.get(key)
        if owner is None:
            seen[key] = (func, i)
        else:
            if shared is None:
                shared = [None] * len(closure)
            # A cell of an earlier function, or a cell pickled on its own earlier.
            shared[i] = CellRef(owner[0], owner[1]) if type(owner) is tuple else owner
        if empty:
            values.append(None)
            if empties is None:
                empties = []
            empties.append(i)
        else:
            values.append(pickler._stable(value))
        i += 1
    closure_arg: Any = len(closure) if shared is None else tuple(shared)
    return closure_arg, tuple(values), None if empties is None else tuple(empties)


if sys.version_info >= (3, 11):
    def _default_qualname(code: CodeType) -> str:
        return code.co_qualname
else:  # 3.10: code objects have no qualname
    def _default_qualname(code: CodeType) -> str:
        return code.co_name


class CellRef:
    """Stands for a cell already created in this pickle as ``func.__closure__[index]``."""

    __slots__ = ("func", "index")

    def __init__(self, func: FunctionType, index: int) -> None:
        self.func = func
        self.index = index


def reduce_cell_ref(pickler: "Pickler", ref: CellRef) -> tuple:
    return (_rebuild.closure_cell, (ref.func, ref.index))


class StableSet:
    """Stands for a set or frozenset whose elements must be written in a stable order."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _stable_sort_key(value: Any) -> Tuple[str, str]:
    return (type(value).__qualname__, repr(value))


def reduce_stable_set(pickler: "Pickler", wrapper: StableSet) -> tuple:
    value = wrapper.value
    try:
        items = sorted(value)
    except TypeError:
        items = sorted(value, key=_stable_sort_key)
    return (type(value), (items,))


def reduce_cell(pickler: "Pickler", cell: CellType) -> tuple:
    """A standalone cell; one already made as part of a closure is referenced there.

    ``_closure_cells`` maps id(cell) to ``(func, index)`` for cells made by a function's
    rebuild, or to the cell itself for cells pickled on their own.
    """
    owner = pickler._closure_cells.get(id(cell))
    if owner is cell:
        # Reduced again while written (its filling refers to it): only without a memo.
        raise PicklingError(_errors.FAST_CELL)
    if owner is not None:
        return (_rebuild.closure_cell, owner)
    # Functions pickled later that close over this cell share it.
    pickler._closure_cells[id(cell)] = cell
    try:
        value = cell.cell_contents
    except ValueError:
        return (_rebuild.make_cell, ())
    return (_rebuild.make_cell, (), (pickler._stable(value),), None, None, _rebuild.fill_cell)


# --------------------------------------------------------------------------------------------
# The pickler

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
# type.__flags__ read past any metaclass __getattribute__, as the compiled core reads tp_flags.
_type_flags = type.__dict__["__flags__"].__get__

_HOT_DISPATCH: Dict[type, Callable[["Pickler", Any], Any]] = {
    CodeType: reduce_code,
    CellType: reduce_cell,
    CellRef: reduce_cell_ref,
    StableSet: reduce_stable_set,
}


class Pickler(pickle.Pickler):
    """A C ``pickle.Pickler`` that also pickles functions and classes by value.

    Takes ``(file, protocol=None, buffer_callback=None)``; ``None`` means
    :data:`DEFAULT_PROTOCOL`. Everything is reduced through :meth:`reducer_override`, so the
    memo, ``persistent_id`` (defined by subclasses) and ``buffer_callback`` of this pickler
    apply to everything inside a function.
    """

    def __init__(self, file: Any, protocol: Optional[int] = None,
                 buffer_callback: Any = None) -> None:
        if protocol is None:
            protocol = DEFAULT_PROTOCOL
        super().__init__(file, protocol, buffer_callback=buffer_callback)
        self._protocol = DEFAULT_PROTOCOL if protocol < 0 else protocol
        # Per-dump bookkeeping, keyed by id(): every keyed object is kept alive here too, so
        # an id cannot be reused while the memo may still refer to it.
        self._tokens: Dict[int, Any] = {}
        # id(cell) -> (function, index) for cells a function's rebuild makes, or the cell
        # itself for a cell pickled on its own first.
        self._closure_cells: Dict[int, Any] = {}
        # id(code) -> its CodeInfo, for this pickle (see _pickled_info; the memo holds the
        # function or code object, so the code object too).
        self._codes: Dict[int, CodeInfo] = {}
        # The by-value registry as this dump started: one pickle never mixes two registries.
        self._by_value: FrozenSet[str] = _modules.BY_VALUE

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if t is FunctionType:
            return reduce_function(self, obj)
        reducer = _HOT_DISPATCH.get(t)
        if reducer is not None:
            return reducer(self, obj)
        reducer = _reducers.DISPATCH.get(t)
        if reducer is not None:
            return reducer(self, obj)
        # By the real type, not isinstance(): __class__ can be faked.
        if issubclass(t, type):
            if not _type_flags(obj) & _HEAPTYPE:
                # A static (C) type: never by value; by name unless it has a special form.
                return _classes.SPECIAL_TYPES.get(obj, NotImplemented)
            return _classes.reduce_class(self, obj)
        if issubclass(t, ModuleType):
            name = obj.__name__
            if type(name) is str and sys.modules.get(name) is obj and not self._by_value:
                return (_rebuild.import_module, (name,))  # the common case, inline
            return _modules.reduce_module(self, obj)
        return NotImplemented

    def dump(self, obj: Any) -> None:
        """Write the pickle of ``obj``; too-deep nesting raises :class:`PicklingError`."""
        _dump(self, obj)

    def clear_memo(self) -> None:
        """Forget what was pickled so far (the next dump starts a new pickle's memo)."""
        _clear(self)

    def _globals_token(self, gdict: Dict[str, Any]) -> Dict[str, Any]:
        """The dict that stands for ``gdict`` in this pickle: it becomes the shared globals of
        every function of that module on load (a plain dict, so the memo shares it)."""
        key = id(gdict)
        token = self._tokens.get(key)
        if token is None:
            # Interned, as the class skeleton's names are: equal names are then one object in
            # every process, so a pickle made again where this one is loaded shares them alike.
            name = _dict_get(gdict, "__name__")
            token = {"__name__": sys.intern(name) if type(name) is str else name}
            package = _dict_get(gdict, "__package__")
            if package is not None:
                token["__package__"] = package
            self._tokens[key] = token
            self._tokens[~key] = gdict
        return token

    def _stable(self, value: Any) -> Any:
        """``value``, or a stand-in that writes a set's elements in a stable order."""
        t = type(value)
        if t is set or t is frozenset:
            key = id(value)
            wrapper = self._tokens.get(key)
            if wrapper is None:
                wrapper = StableSet(value)
                self._tokens[key] = wrapper
                self._tokens[~key] = value
            return wrapper
        return value


# Hand the class reducer the plain pickler of this implementation (for class digests).
Pickler._core_class = Pickler  # type: ignore[attr-defined]
Pickler._digesting = False  # type: ignore[attr-defined]  # True only while taking a digest

_C_DUMP = pickle.Pickler.dump
_C_CLEAR_MEMO = pickle.Pickler.clear_memo


def _dump(pickler: Pickler, obj: Any) -> None:
    pickler._by_value = _modules.BY_VALUE
    try:
        _C_DUMP(pickler, obj)
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


def _uninitialized(pickler: Any) -> PicklingError:
    name = type(pickler).__qualname__
    return PicklingError(
        f"Pickler.__init__() was not called by {name}.__init__(); call "
        f"super().__init__(file, protocol) there before dump()")


def _clear(pickler: Pickler) -> None:
    _C_CLEAR_MEMO(pickler)
    pickler._tokens.clear()
    pickler._closure_cells.clear()
    pickler._codes.clear()


# One reusable pickler per thread for dumps() at the default protocol: building a pickler
# costs about as much as pickling a small lambda. It writes into a list (one append per
# frame), which is cheaper than a BytesIO to fill, read and reset.
_local = threading.local()


_REUSE_LIMIT: int = 16384


class _Sink:
    """A write-only file for the reusable pickler."""

    __slots__ = ("chunks", "write")

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.write = self.chunks.append


def dumps(obj: Any, protocol: Optional[int] = None, buffer_callback: Any = None) -> bytes:
    """The pickle of ``obj`` as bytes (see ``fastfnpickle.dumps``)."""
    if buffer_callback is not None or not (protocol is None or protocol == DEFAULT_PROTOCOL):
        buf = io.BytesIO()
        _dump(Pickler(buf, protocol, buffer_callback=buffer_callback), obj)
        return buf.getvalue()
    slot = getattr(_local, "slot", None)
    if slot is None or slot[2]:
        # First use on this thread, or a dumps() nested inside another one (a __reduce__
        # that calls dumps): a private pickler.
        sink = _Sink()
        slot = [sink, Pickler(sink), False]
        if getattr(_local, "slot", None) is None:
            _local.slot = slot
    chunks = slot[0].chunks
    pickler = slot[1]
    slot[2] = True
    try:
        _dump(pickler, obj)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        # Clearing a memo costs time in proportion to its largest size ever, so after a big
        # pickle the thread gets a fresh pickler instead; otherwise drop the memo's references
        # to the user's objects now.
        if len(chunks) > 1 or (chunks and len(chunks[0]) > _REUSE_LIMIT):
            slot[1] = Pickler(slot[0])
        else:
            _clear(pickler)
        chunks.clear()
        slot[2] = False
