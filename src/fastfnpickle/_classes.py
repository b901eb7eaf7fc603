"""Classes pickled by value (dynamic, ``__main__``, registered modules), enums and TypeVars.

The dump side of classes: when a class goes by value, and the id it travels under. The id is
derived, the first time a class object is pickled, from everything its pickle carries (a
digest of that pickle's bytes), and kept for the class's life (``_class_registry``): the same
program gives the same bytes in every process, two classes whose pickled state differs
anywhere never share an id, and later pickles of a changed class reach a loader under the
same id, which applies the new state to the class it holds.
"""

import abc
import copyreg
import enum
import hashlib
import io
import pickle
import sys
import threading
import types
import typing
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any, Dict, FrozenSet, Optional, Tuple

from . import _class_registry, _deferred, _enums, _fork, _modules, _rebuild

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
    for part in _deferred.qualname_path(qualname):  # 3.15+: private names mangled
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
# Reduction

# Created by the metaclass itself when the class is rebuilt, or only meaningful in this process.
_SKIP = frozenset({
    "__dict__", "__weakref__", "_abc_impl", "__module__", "__qualname__", "__slots__",
    "__orig_bases__", "__class__",
    "__slotnames__",  # copyreg's cache, added to the class the first time an instance pickles
})
_SKIP_WITH_DOC = _SKIP | {"__doc__"}
_ENUM_SKIP = frozenset({
    "_member_names_", "_member_map_", "_value2member_map_", "_unhashable_values_",
    "_member_type_", "_value_repr_", "_new_member_", "_use_args_", "_boundary_",
    "_flag_mask_", "_all_bits_", "_singles_mask_", "_inverted_", "__new__", "__new_member__",
    "_hashable_values_",
    "_unhashable_values_map_",  # 3.14+
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
    if pickler._digesting:
        return _stand_in(pickler, cls)
    return _reduce_by_value(pickler, cls)


# Classes found importable by name while no module was registered by value: id -> class (held,
# so the id stays valid). Classes importable by name live in modules and stay there.
_BY_NAME: Dict[int, type] = {}


@_fork.in_child
def _after_fork_in_child() -> None:
    _BY_NAME.clear()  # a cache (see _fork)


def _reduce_by_value(pickler: Any, cls: type) -> tuple:
    # A copy, made atomically: pickling an instance on another thread can add copyreg's
    # __slotnames__ to the class dict while we read it.
    d = cls.__dict__.copy()
    skeleton: Dict[str, Any] = {"__module__": _interned(cls.__module__),
                                "__qualname__": _interned(cls.__qualname__)}
    # Needed at creation: __slots__ makes the layout, Generic checks __orig_bases__, and a
    # __class__ entry (proxy classes) cannot be set on a class afterwards.
    for key in ("__slots__", "__orig_bases__", "__class__"):
        if key in d:
            skeleton[key] = d[key]
    skip: FrozenSet[str] = _SKIP
    # The docstring goes in at creation, where the class statement would put it: the loaded
    # class then lists its attributes in the original order, and pickles again to these bytes.
    doc = d.get("__doc__")
    if doc is None or type(doc) is str:
        skeleton["__doc__"] = doc
        skip = _SKIP_WITH_DOC
    elif "__doc__" in d:
        # Any other object (3.15 dataclasses put a lazy docstring descriptor there) may refer
        # back to the class: it is set last with the attributes, into the place held by None
        # (last whatever its place in the dict, so a loaded class pickles to the same bytes).
        skeleton["__doc__"] = None
        skip = _SKIP_WITH_DOC
    if isinstance(cls, enum.EnumMeta):
        members: Dict[str, Any] = dict(cls.__members__)
        values = {name: member._value_ for name, member in members.items()}
        skip = skip | _ENUM_SKIP | values.keys()
        skeleton.update(values)
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
    if skeleton.get("__doc__", 0) is None and doc is not None:
        attrs["__doc__"] = doc  # the non-str docstring (see above)
    # The commonest metaclass and bases are left implicit: every global a pickle names costs
    # a module lookup when it is written, more than the rest of a small class.
    meta = type(cls)
    bases = cls.__bases__
    head = (None if meta is type else meta, cls.__name__,
            () if len(bases) == 1 and bases[0] is object else bases, skeleton)
    registry = _abc_registry(cls)
    member_attrs = _enums.member_attrs(cls) if isinstance(cls, enum.EnumMeta) else None
    state = (attrs, registry) if member_attrs is None else (attrs, registry, member_attrs)
    cid = _class_registry.known_id(cls)
    if cid is None:
        cid = _first_id(pickler, cls, head, state)
    make = _rebuild.make_class
    return (make, head + (cid,), state, None, None, make)


def _interned(value: Any) -> Any:
    # One object per name in every process (see the core's globals token).
    return sys.intern(value) if type(value) is str else value


# --------------------------------------------------------------------------------------------
# Class ids

# Per thread: id(class) -> position, for the classes whose digest is being taken right now.
_local = threading.local()
_C_DUMP = pickle.Pickler.dump


def _pending() -> Dict[int, int]:
    pending: Optional[Dict[int, int]] = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = {}
    return pending


def _first_id(pickler: Any, cls: type, head: tuple, state: tuple) -> str:
    """The id ``cls`` keeps for life: a digest of the pickle of everything it travels with.

    Taken with a fresh pickler of the same implementation at a fixed protocol, so the id does
    not depend on the outer pickle (its protocol, its memo, a host's ``persistent_id``).
    Classes reached from the state get their own ids first, and so take part in this digest
    through their ids and state; a reference back to a class whose digest is still being taken
    is written as a stand-in.
    """
    digest = _content_digest(pickler, cls, (head, state))
    if digest is None:
        # Something in the state does not pickle on its own. Usually the outer pickle fails on
        # it next and reports where; but a host's persistent_id may take it there, so the
        # pickle gets an id from the state's outline, not kept (the next pickle tries again).
        return "~" + _digest(_outline(cls, state[0]).encode("utf-8", "backslashreplace"))
    return _class_registry.assign_id(cls, digest)


def _content_digest(pickler: Any, obj: Any, content: Any) -> Optional[str]:
    """The digest of ``content`` (what ``obj`` travels with) pickled on its own, or None if it
    does not pickle on its own. ``obj`` met again inside is a stand-in (see ``_stand_in``)."""
    pending = _pending()
    key = id(obj)
    pending[key] = len(pending)
    try:
        sink = io.BytesIO()
        digester = pickler._core_class(sink, _DIGEST_PROTOCOL)
        digester._by_value = pickler._by_value
        digester._digesting = True
        # The C dump itself: failure notes belong to the outer dump.
        _C_DUMP(digester, content)
    except RecursionError:
        raise  # too deep to pickle at all: the outer dump reports it
    except Exception:
        return None
    finally:
        del pending[key]
    return _digest(sink.getvalue())


def _stand_in(pickler: Any, cls: type) -> tuple:
    """How a by-value class reached from a digested state is written into the digest.

    By its id (taken first if it has none), which stands for its whole state, so a digest
    costs one level, not the whole tree of classes below it. A class whose own digest is
    still being taken (a method's global naming its class, an enum member) is written as
    its position on that stack: deterministic, and never loaded.
    """
    index = _pending().get(id(cls))
    if index is not None:
        return (str, (f"<fastfnpickle: class being identified #{index}>",))
    cid = _class_registry.known_id(cls)
    if cid is None:
        cid = _reduce_by_value(pickler, cls)[1][-1]
    return (str, (f"<fastfnpickle: class {cid}>",))


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _outline(cls: type, attrs: Dict[str, Any]) -> str:
    parts = [f"{cls.__module__}.{cls.__qualname__}"]
    parts.extend(f"{key}:{type(value).__module__}.{type(value).__qualname__}"
                 for key, value in attrs.items())
    return "\n".join(parts)


_DIGEST_PROTOCOL = 5


# --------------------------------------------------------------------------------------------
# TypeVar, ParamSpec, TypeVarTuple

_TYPEVAR_KINDS = tuple(
    k for k in (getattr(typing, n, None) for n in ("TypeVar", "ParamSpec", "TypeVarTuple"))
    if k is not None
)


def reduce_typevar(pickler: Any, tv: Any) -> Any:
    """Reduce value of a TypeVar, ParamSpec or TypeVarTuple: NotImplemented when importable by
    name, else by value under an id derived from its content, as a class's is."""
    if by_reference(tv, tv.__name__, pickler._by_value):
        return NotImplemented
    if pickler._digesting:
        return (str, (f"<fastfnpickle: TypeVar {_typevar_stand_in(pickler, tv)}>",))
    args = _typevar_args(tv)
    tid = _class_registry.known_typevar_id(tv)
    if tid is None:
        tid = _first_typevar_id(pickler, tv, args)
    # The id goes where older pickles end it, so they keep loading (make_typevar).
    return (_rebuild.make_typevar, args[:7] + (tid,) + args[7:])


def _typevar_args(tv: Any) -> tuple:
    """(kind, name, bound, constraints, covariant, contravariant, infer_variance, module[,
    default]): everything a TypeVar-like object is made of."""
    args: tuple = (
        type(tv), tv.__name__, getattr(tv, "__bound__", None), getattr(tv, "__constraints__", ()),
        bool(getattr(tv, "__covariant__", False)), bool(getattr(tv, "__contravariant__", False)),
        bool(getattr(tv, "__infer_variance__", False)), getattr(tv, "__module__", None))
    has_default = getattr(tv, "has_default", None)  # 3.13+ (PEP 696)
    if has_default is not None and has_default():
        args += (tv.__default__,)
    return args


def _first_typevar_id(pickler: Any, tv: Any, args: tuple) -> str:
    # As _first_id: a bound, constraint or default that names this TypeVar (a generic alias
    # over it, a class by value whose state holds it) meets it as a stand-in, not recursion.
    digest = _content_digest(pickler, tv, args)
    if digest is None:
        outline = f"{args[7]}.{args[1]}:{args[0].__qualname__}"
        return "~" + _digest(outline.encode("utf-8", "backslashreplace"))
    return _class_registry.assign_typevar_id(tv, digest)


def _typevar_stand_in(pickler: Any, tv: Any) -> str:
    # How a TypeVar reached from a digested state is written into the digest: by its id, or
    # by its place on the stack of objects being identified (see _stand_in).
    index = _pending().get(id(tv))
    if index is not None:
        return f"being identified #{index}"
    tid = _class_registry.known_typevar_id(tv)
    return tid if tid is not None else _first_typevar_id(pickler, tv, _typevar_args(tv))
