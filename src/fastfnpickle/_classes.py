"""Classes pickled by value (dynamic, ``__main__``, registered modules), enums and TypeVars.

A class pickled by value carries an id derived from its content, not a random one, so the
same class pickles to the same bytes in every process; loading that id twice in one process
gives the same class object back (the registry below), which keeps ``isinstance`` and enum
member identity working across pickles.
"""

import abc
import copyreg
import enum
import functools
import hashlib
import sys
import threading
import types
import typing
import weakref
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from . import _modules, _rebuild

_LOCK = threading.RLock()
# Keyed by id() with a weak reference beside: classes whose metaclass defines __eq__ may be
# unhashable, so they cannot be keys of a WeakKeyDictionary or members of a WeakSet.
_ID_BY_CLASS: Dict[int, Tuple[Any, str]] = {}
_CLASS_BY_ID: "weakref.WeakValueDictionary[str, type]" = weakref.WeakValueDictionary()
# Classes made by make_class that still wait for their state: id -> weak reference.
_FRESH: Dict[int, Any] = {}


def _forget_class(key: int, ref: Any) -> None:
    with _LOCK:
        entry = _ID_BY_CLASS.get(key)
        if entry is not None and entry[0] is ref:
            del _ID_BY_CLASS[key]
        if _FRESH.get(key) is ref:
            del _FRESH[key]


def _known_id(cls: type) -> Optional[str]:
    entry = _ID_BY_CLASS.get(id(cls))
    return entry[1] if entry is not None and entry[0]() is cls else None


def _remember(cls: type, cid: str, fresh: bool = False) -> None:
    key = id(cls)
    ref = weakref.ref(cls, functools.partial(_forget_class, key))
    _ID_BY_CLASS[key] = (ref, cid)
    _CLASS_BY_ID[cid] = cls
    if fresh:
        _FRESH[key] = ref


def _is_fresh(cls: type) -> bool:
    ref = _FRESH.get(id(cls))
    return ref is not None and ref() is cls
_TYPEVAR_BY_ID: Dict[str, Any] = {}
_ID_BY_TYPEVAR: Dict[int, Tuple[Any, str]] = {}

# Builtin types that cannot be found as module.qualname (types.FunctionType is
# ``builtins.function``, which does not exist): pickled as ``getattr(types, name)``.
SPECIAL_TYPES: Dict[type, tuple] = {
    type(None): (type, (None,)),
    type(Ellipsis): (type, (Ellipsis,)),
    type(NotImplemented): (type, (NotImplemented,)),
}


def _found_by_name(module_name: Any, qualname: Any, obj: Any) -> bool:
    if type(module_name) is not str or type(qualname) is not str:
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return False
    return found is obj


for _name in sorted(vars(types)):
    _obj = getattr(types, _name)
    if (isinstance(_obj, type) and _obj not in SPECIAL_TYPES
            and not _found_by_name(_obj.__module__, _obj.__qualname__, _obj)):
        SPECIAL_TYPES[_obj] = (getattr, (types, _name))
del _name, _obj

_DYNAMIC_MODULES = frozenset({"__main__", "__mp_main__"})


def by_reference(obj: Any, qualname: Any, registered: FrozenSet[str]) -> bool:
    """Whether ``obj`` (a class or TypeVar) is importable as ``obj.__module__`` + ``qualname``
    and its module is not in ``registered`` (the by-value registry as the pickle started)."""
    module_name = getattr(obj, "__module__", None)
    if type(module_name) is not str:  # nothing to import it by (and maybe not comparable)
        return False
    if module_name == "builtins":
        return True
    if module_name in _DYNAMIC_MODULES:
        return False
    if registered and _modules.is_by_value_name(module_name, registered):
        return False
    return _found_by_name(module_name, qualname, obj)


# --------------------------------------------------------------------------------------------
# Class ids

_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def _digest_part(value: Any, depth: int = 0) -> str:
    """A deterministic description of a class attribute for the content digest."""
    # Exact types only: class attributes may be proxies whose __getattr__ raises or recurses.
    t = type(value)
    func = value
    if t is classmethod or t is staticmethod:
        func = value.__func__
    elif t is property:
        func = value.fget
    code = func.__code__ if type(func) is types.FunctionType else None
    if code is not None:
        # The encoded code (constants included, file name aside) is cached per code object.
        from ._impl import core

        return f"code:{code.co_filename}:{core.code_info(code).data.hex()}"
    if t in _SCALARS:
        return repr(value)
    if depth < 3 and t in (tuple, list) and len(value) <= 64:
        return f"{t.__name__}[{','.join(_digest_part(v, depth + 1) for v in value)}]"
    if depth < 3 and t in (set, frozenset) and len(value) <= 64:
        return f"{t.__name__}{{{','.join(sorted(_digest_part(v, depth + 1) for v in value))}}}"
    if depth < 3 and t is dict and len(value) <= 64:
        items = (f"{_digest_part(k, depth + 1)}:{_digest_part(v, depth + 1)}"
                 for k, v in value.items())
        return f"dict{{{','.join(items)}}}"
    return t.__qualname__


def _content_digest(cls: type) -> str:
    parts: List[str] = [
        _digest_part(cls.__module__), str(cls.__qualname__), type(cls).__qualname__,
        ",".join(f"{_digest_part(b.__module__)}.{b.__qualname__}" for b in cls.__bases__),
    ]
    for key, value in cls.__dict__.copy().items():  # a copy: other threads may add to it
        if key != "__slotnames__":
            parts.append(f"{key}={_digest_part(value)}")
    return hashlib.blake2b("\n".join(parts).encode("utf-8", "backslashreplace"),
                           digest_size=12).hexdigest()


def class_id(cls: type) -> str:
    """Content-derived id of a class pickled by value; stable across processes."""
    cid = _known_id(cls)
    if cid is not None:
        return cid
    with _LOCK:
        cid = _known_id(cls)
        if cid is None:
            digest = _content_digest(cls)
            n = 0
            while True:
                cid = f"{digest}-{n}"
                if _CLASS_BY_ID.get(cid) is None:
                    break
                n += 1
            _remember(cls, cid)
        return cid


# --------------------------------------------------------------------------------------------
# Reduction

# Created by the metaclass itself when the class is rebuilt, or only meaningful in this process.
_SKIP = frozenset({
    "__dict__", "__weakref__", "_abc_impl", "__module__", "__qualname__", "__slots__",
    "__orig_bases__", "__class__",
    "__slotnames__",  # copyreg's cache, added to the class the first time an instance pickles
})
_ENUM_SKIP = frozenset({
    "_member_names_", "_member_map_", "_value2member_map_", "_unhashable_values_",
    "_member_type_", "_value_repr_", "_new_member_", "_use_args_", "_boundary_",
    "_flag_mask_", "_all_bits_", "_singles_mask_", "_inverted_", "__new__", "__new_member__",
    "_hashable_values_",
})


def _sort_name(c: type) -> Tuple[str, str]:
    return (str(c.__module__), c.__qualname__)


def _abc_registry(cls: type) -> Optional[tuple]:
    if not isinstance(cls, abc.ABCMeta):
        return None
    try:
        registry = abc._get_dump(cls)[0]  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return None
    subclasses = [r() for r in registry]
    subclasses = [c for c in subclasses if c is not None]
    if not subclasses:
        return None
    return tuple(sorted(subclasses, key=_sort_name))


def reduce_class(pickler: Any, cls: type) -> Any:
    """Reduce value of a class: NotImplemented when importable by name, else by value."""
    meta = type(cls)
    if meta is type:
        special = SPECIAL_TYPES.get(cls)
        if special is not None:
            return special
    else:
        # A reducer registered for the metaclass (copyreg or the pickler's dispatch_table)
        # wins, as with the stdlib: the C pickler consults it once we decline.
        table = getattr(pickler, "dispatch_table", None)
        if meta in (copyreg.dispatch_table if table is None else table):
            return NotImplemented
    registered = pickler._by_value
    if not registered:
        entry = _BY_NAME.get(id(cls))
        if entry is not None and entry is cls:
            return NotImplemented
    if by_reference(cls, cls.__qualname__, registered):
        if not registered:
            if len(_BY_NAME) >= 4096:
                _BY_NAME.clear()
            _BY_NAME[id(cls)] = cls
        return NotImplemented
    return _reduce_by_value(pickler, cls)


# Classes found importable by name while no module was registered by value: id -> class (held,
# so the id stays valid). Classes importable by name live in modules and stay there.
_BY_NAME: Dict[int, type] = {}


def _reduce_by_value(pickler: Any, cls: type) -> tuple:
    # A copy, made atomically: pickling an instance on another thread can add copyreg's
    # __slotnames__ to the class dict while we read it.
    d = cls.__dict__.copy()
    skeleton: Dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    # Needed at creation: __slots__ makes the layout, Generic checks __orig_bases__, and a
    # __class__ entry (proxy classes) cannot be set on a class afterwards.
    for key in ("__slots__", "__orig_bases__", "__class__"):
        if key in d:
            skeleton[key] = d[key]
    skip: FrozenSet[str] = _SKIP
    if isinstance(cls, enum.EnumMeta):
        members = {name: member._value_ for name, member in cls.__members__.items()}
        skip = skip | _ENUM_SKIP | members.keys()
        skeleton.update(members)
    if d.get("__annotate_func__") is not None:
        # 3.14+: the cached result of the class's __annotate__, which travels itself (a cache
        # set by hand comes with __annotate_func__ None and is kept).
        skip = skip | {"__annotations_cache__"}
    attrs: Dict[str, Any] = {}
    for key, value in d.items():
        if key in skip:
            continue
        t = type(value)
        if t is MemberDescriptorType or t is GetSetDescriptorType:
            if value.__objclass__ is cls:
                continue  # made from __slots__ when the class is rebuilt
        elif t is set or t is frozenset:
            value = pickler._stable(value)
        attrs[key] = value
    # The commonest metaclass and bases are left implicit: every global a pickle names costs
    # a module lookup when it is written, more than the rest of a small class.
    meta = type(cls)
    bases = cls.__bases__
    make = _rebuild.make_class
    return (
        make,
        (None if meta is type else meta, cls.__name__,
         () if len(bases) == 1 and bases[0] is object else bases,
         skeleton, class_id(cls)),
        (attrs, _abc_registry(cls)),
        None,
        None,
        make,
    )


def make_class(a: Any, b: Any, bases: Any = None, skeleton: Any = None,
               cid: Any = None) -> type:
    """Make a class, or fill one in.

    ``make_class(metaclass, name, bases, skeleton, cid)`` gives the class with id ``cid``: the
    one already in this process, else a new skeleton (``metaclass`` None means ``type``);
    ``make_class(cls, state)`` is its state setter (:func:`set_class_state`). One callable
    serves both so a pickle names one global per class.
    """
    if cid is None:
        return set_class_state(a, b)
    return _make_class(type if a is None else a, b, bases, skeleton, cid)


def _make_class(metaclass: type, name: str, bases: tuple, skeleton: Dict[str, Any],
                cid: str) -> type:
    with _LOCK:
        existing = _CLASS_BY_ID.get(cid)
        if existing is not None:
            return existing

        def body(ns: Dict[str, Any]) -> None:
            for key, value in skeleton.items():  # item by item: enum namespaces hook __setitem__
                ns[key] = value

        cls = None
        if metaclass is type and _has_subclass_hook(bases):
            cls = _without_subclass_hook(name, bases, skeleton)
        if cls is None:
            try:
                cls = types.new_class(name, bases, {"metaclass": metaclass}, body)
            except TypeError:
                # Metaclasses that refuse their own classes' bases (TypedDict's) are bypassed.
                cls = type.__new__(metaclass, name, bases, dict(skeleton))
        _remember(cls, cid, fresh=True)
        return cls


def _has_subclass_hook(bases: tuple) -> bool:
    for base in bases:
        for klass in base.__mro__:
            if klass is not object and "__init_subclass__" in klass.__dict__:
                return True
    return False


class _HookFree:
    """A plain base with object's ``__init_subclass__``, to be swapped for the real bases."""


def _without_subclass_hook(name: str, bases: tuple, skeleton: Dict[str, Any]) -> Optional[type]:
    """Rebuild a class without re-running its bases' ``__init_subclass__``.

    The hook already ran when the class was defined, with keywords that are not recorded
    anywhere, and what it did to the class is in the pickled state. Made on a hook-free base
    and then rebased; None when the bases' layout does not allow that.
    """
    cls = type(name, (_HookFree,), dict(skeleton))
    try:
        cls.__bases__ = bases
    except TypeError:
        return None
    return cls


def set_class_state(cls: type, state: tuple) -> type:
    """Attach methods and attributes; a class that already existed is left as it is."""
    attrs, registry = state
    # Under the lock: another thread loading the same class got this skeleton from the
    # registry and must not return from its loads() until the class is complete (it fills it
    # itself if it comes first, with equal state).
    with _LOCK:
        if not _is_fresh(cls):
            return cls
        try:
            for key, value in attrs.items():
                setattr(cls, key, value)
                set_name = getattr(type(value), "__set_name__", None)
                if set_name is not None:
                    set_name(value, cls, key)
            if registry:
                for sub in registry:
                    cls.register(sub)  # type: ignore[attr-defined]
        except BaseException:
            # A half-built class must not be handed out again under its id.
            cid = _known_id(cls)
            if cid is not None and _CLASS_BY_ID.get(cid) is cls:
                del _CLASS_BY_ID[cid]
            raise
        finally:
            _FRESH.pop(id(cls), None)
    return cls


# --------------------------------------------------------------------------------------------
# TypeVar, ParamSpec, TypeVarTuple

_TYPEVAR_KINDS = tuple(
    k for k in (getattr(typing, n, None) for n in ("TypeVar", "ParamSpec", "TypeVarTuple"))
    if k is not None
)


def reduce_typevar(pickler: Any, tv: Any) -> Any:
    if by_reference(tv, tv.__name__, pickler._by_value):
        return NotImplemented
    kind = type(tv)
    constraints = getattr(tv, "__constraints__", ())
    bound = getattr(tv, "__bound__", None)
    co = bool(getattr(tv, "__covariant__", False))
    contra = bool(getattr(tv, "__contravariant__", False))
    infer = bool(getattr(tv, "__infer_variance__", False))
    return (_rebuild.make_typevar,
            (kind, tv.__name__, bound, constraints, co, contra, infer, _typevar_id(tv)))


def _typevar_id(tv: Any) -> str:
    with _LOCK:
        entry = _ID_BY_TYPEVAR.get(id(tv))
        if entry is not None and entry[0] is tv:
            return entry[1]
        base = f"{tv.__module__}.{tv.__name__}:{type(tv).__name__}"
        n = 0
        while f"{base}-{n}" in _TYPEVAR_BY_ID:
            n += 1
        tid = f"{base}-{n}"
        _TYPEVAR_BY_ID[tid] = tv
        _ID_BY_TYPEVAR[id(tv)] = (tv, tid)
        return tid


def make_typevar(kind: Any, name: str, bound: Any, constraints: tuple, covariant: bool,
                 contravariant: bool, infer_variance: bool, tid: str) -> Any:
    """The TypeVar (or ParamSpec, TypeVarTuple) with id ``tid``, made once per process."""
    with _LOCK:
        existing = _TYPEVAR_BY_ID.get(tid)
        if existing is not None:
            return existing
        kwargs: Dict[str, Any] = {}
        if kind is typing.TypeVar or getattr(kind, "__name__", "") == "ParamSpec":
            kwargs = {"bound": bound, "covariant": covariant, "contravariant": contravariant}
            if infer_variance:
                kwargs["infer_variance"] = True
        args = tuple(constraints) if kind is typing.TypeVar else ()
        tv = kind(name, *args, **kwargs)
        _TYPEVAR_BY_ID[tid] = tv
        _ID_BY_TYPEVAR[id(tv)] = (tv, tid)
        return tv
