"""Class and TypeVar identity on both sides of a pickle, and the class reconstructors.

Load side: pickles call :func:`make_class` and :func:`make_typevar` (through ``_rebuild``), and
nothing here imports the dump side. The dump side asks :func:`known_id` / :func:`assign_id`
(and :func:`known_typevar_id` / :func:`assign_typevar_id`).

The identity contract (README, "Classes by value"):

- A class pickled by value carries an id that is fixed for the class object's life: the dump
  side derives it once from the class's complete pickled state and never recomputes it.
- A process that holds a class under an id hands that same class out again for it. A class this
  process *loaded* also takes the incoming state (methods, attributes) of every later pickle of
  that id, so objects already living here see the producer's updates; a class that *originated*
  here is never overwritten by a pickle of itself (it is the newest version by definition).
- TypeVars, ParamSpecs and TypeVarTuples have ids made the same way, from everything their
  pickle carries; there is nothing to update on them.
"""

import functools
import threading
import types
import typing
import weakref
from pickle import UnpicklingError
from typing import Any, Callable, Dict, Optional, Tuple

from . import _fork
from ._corrupt import corrupt, invalid, unpack
from ._format import REBUILD_MAKE_CLASS, REBUILD_MAKE_TYPEVAR
from ._names import intern_keys, interned_names

_LOCK = threading.RLock()

# Keyed by id() with a weak reference beside: classes whose metaclass defines __eq__ may be
# unhashable, so they cannot be keys of a WeakKeyDictionary or members of a WeakSet.
_ById = Dict[int, Tuple[Any, str]]
_ID_BY_CLASS: _ById = {}
_CLASS_BY_ID: "weakref.WeakValueDictionary[str, type]" = weakref.WeakValueDictionary()
# Classes made here by make_class: id(cls) -> weak reference. Only these take incoming state.
_LOADED: Dict[int, Any] = {}
# TypeVar, ParamSpec, TypeVarTuple: the same two tables (every kind supports weak references
# on 3.10-3.15), so one nothing else refers to is freed, loaded or not.
_ID_BY_TYPEVAR: _ById = {}
_TYPEVAR_BY_ID: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()

# The registration being written, as (by_object, by_id, id(obj), id string): a fork can stop
# the writing thread between its three writes, and the child undoes what it finds half-done.
_writing: Optional[Tuple[_ById, Any, int, str]] = None


def _forget(key: int, ref: Any) -> None:
    # The callback holds no table (a table holding its own callbacks would outlive this
    # module's globals at exit): an entry is this object's if it holds this very reference.
    if _LOCK is None:
        return  # interpreter shutdown: this module's globals are cleared already
    with _LOCK:
        for by_object in (_ID_BY_CLASS, _ID_BY_TYPEVAR):
            entry = by_object.get(key)
            if entry is not None and entry[0] is ref:
                del by_object[key]
        if _LOADED.get(key) is ref:
            del _LOADED[key]


def _remember(obj: Any, oid: str, loaded: bool, by_object: _ById = _ID_BY_CLASS,
              by_id: Any = _CLASS_BY_ID) -> None:
    global _writing
    key = id(obj)
    ref = weakref.ref(obj, functools.partial(_forget, key))
    _writing = (by_object, by_id, key, oid)
    by_object[key] = (ref, oid)
    by_id[oid] = obj
    if loaded:
        _LOADED[key] = ref
    _writing = None


@_fork.in_child
def _after_fork_in_child() -> None:
    # The lock may be held by a thread the child does not have (see _fork); a registration
    # that thread had begun is undone, so no id is half taken.
    global _LOCK, _writing
    _LOCK = threading.RLock()
    if _writing is None:
        return
    by_object, by_id, key, oid = _writing
    _writing = None
    entry = by_object.get(key)
    if entry is not None and entry[1] == oid:
        del by_object[key]
    obj = by_id.get(oid)
    if obj is not None and id(obj) == key:
        del by_id[oid]
    _LOADED.pop(key, None)


def _known(by_object: _ById, obj: Any) -> Optional[str]:
    entry = by_object.get(id(obj))
    return entry[1] if entry is not None and entry[0]() is obj else None


def _assign(by_object: _ById, by_id: Any, obj: Any, digest: str) -> str:
    with _LOCK:
        oid = _known(by_object, obj)
        if oid is not None:
            return oid
        n = 0
        while True:
            oid = f"{digest}-{n}"
            if by_id.get(oid) is None:
                break
            n += 1
        _remember(obj, oid, False, by_object, by_id)
        return oid


def known_id(cls: type) -> Optional[str]:
    """The id ``cls`` already has in this process (assigned here or loaded), or None."""
    return _known(_ID_BY_CLASS, cls)


def assign_id(cls: type, digest: str) -> str:
    """Give ``cls`` its id for life: ``digest`` plus the first free ``-N`` suffix.

    The suffix keeps two live class objects of identical content apart (a factory making equal
    classes); a class that already has an id keeps it.
    """
    return _assign(_ID_BY_CLASS, _CLASS_BY_ID, cls, digest)


def _is_loaded(cls: type) -> bool:
    ref = _LOADED.get(id(cls))
    return ref is not None and ref() is cls


# --------------------------------------------------------------------------------------------
# Reconstructors

def make_class(*args: Any) -> type:
    """Make a class, or fill one in.

    ``make_class(metaclass, name, bases, skeleton, cid)`` gives the class with id ``cid``: the
    one already in this process, else a new skeleton (``metaclass`` None means ``type``);
    ``make_class(cls, state)`` is its state setter (:func:`set_class_state`). One callable
    serves both so a pickle names one global per class.
    """
    if len(unpack(REBUILD_MAKE_CLASS, args)) == 2:
        cls, state = args
        if not isinstance(cls, type):
            raise corrupt(REBUILD_MAKE_CLASS, "class", "a class", cls)
        _check_class_state(state)
        return set_class_state(cls, state)
    metaclass, name, bases, skeleton, cid = args
    if metaclass is not None and not (isinstance(metaclass, type)
                                      and issubclass(metaclass, type)):
        raise corrupt(REBUILD_MAKE_CLASS, "metaclass", "None or a metaclass", metaclass)
    if type(name) is not str:
        raise corrupt(REBUILD_MAKE_CLASS, "name", "a str", name)
    if type(bases) is not tuple:
        raise corrupt(REBUILD_MAKE_CLASS, "bases", "a tuple of classes", bases)
    for base in bases:
        if not isinstance(base, type):
            raise corrupt(REBUILD_MAKE_CLASS, "bases", "a tuple of classes", base)
    if type(skeleton) is not dict:
        raise corrupt(REBUILD_MAKE_CLASS, "skeleton", "a dict", skeleton)
    qualname = skeleton.get("__qualname__", "")
    if type(qualname) is not str:
        raise corrupt(REBUILD_MAKE_CLASS, "skeleton's __qualname__", "a str", qualname)
    if type(cid) is not str:
        raise corrupt(REBUILD_MAKE_CLASS, "id", "a str", cid)
    return _make_class(type if metaclass is None else metaclass, name, bases, skeleton, cid)


def _check_class_state(state: Any) -> None:
    """The class state as ``_classes`` writes it: ``(attrs, abc registry[, enum members])``."""
    if type(state) is not tuple or not 2 <= len(state) <= 3:
        raise corrupt(REBUILD_MAKE_CLASS, "state", "a 2- or 3-tuple", state)
    if type(state[0]) is not dict:
        raise corrupt(REBUILD_MAKE_CLASS, "state", "attributes in a dict", state[0])
    for key in state[0]:
        if type(key) is not str:
            raise corrupt(REBUILD_MAKE_CLASS, "state", "attributes named by str", key)
    registry = state[1]
    if registry is not None:
        if type(registry) is not tuple:
            raise corrupt(REBUILD_MAKE_CLASS, "state", "an ABC registry in a tuple", registry)
        for sub in registry:
            if not isinstance(sub, type):
                raise corrupt(REBUILD_MAKE_CLASS, "state", "an ABC registry of classes", sub)
    if len(state) == 3 and state[2] is not None:
        if type(state[2]) is not dict:
            raise corrupt(REBUILD_MAKE_CLASS, "state", "enum member attributes in a dict",
                          state[2])
        for member_attrs in state[2].values():
            if type(member_attrs) is not dict:
                raise corrupt(REBUILD_MAKE_CLASS, "state", "enum member attributes in a dict",
                              member_attrs)


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
                try:
                    cls = type.__new__(metaclass, name, bases, dict(skeleton))
                except TypeError as exc:  # bases no class statement could have (duplicates)
                    raise invalid(REBUILD_MAKE_CLASS, "bases",
                                  f"were refused: {exc}") from None
        _remember(cls, cid, loaded=True)
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
    try:
        cls = type(name, (_HookFree,), dict(skeleton))
    except TypeError as exc:  # a namespace no class statement makes
        raise invalid(REBUILD_MAKE_CLASS, "skeleton", f"was refused: {exc}") from None
    try:
        cls.__bases__ = bases
    except TypeError:
        return None
    return cls


def set_class_state(cls: type, state: tuple) -> type:
    """Attach methods and attributes to a class made or found by :func:`make_class`.

    A class this process loaded takes the state (the first time and on every update); a class
    that originated here is left as it is.
    """
    attrs, registry = state[0], state[1]
    # Enums: attributes their members got from __init__/__new__ (see ``_enums``).
    members = state[2] if len(state) > 2 else None
    # Under the lock: another thread loading the same class got it from the registry and must
    # not see it half-updated from its own loads().
    with _LOCK:
        if not _is_loaded(cls):
            return cls
        try:
            for key, value in attrs.items():
                if type(value) is dict:
                    intern_keys(value)
                elif type(value) is tuple:
                    value = interned_names(value)
                try:
                    setattr(cls, key, value)
                except (TypeError, ValueError, AttributeError) as exc:
                    # A special attribute of the wrong type (a __qualname__ that is no str)
                    raise invalid(REBUILD_MAKE_CLASS, f"state attribute {key!r}",
                                  f"was refused: {exc}") from None
                set_name = getattr(type(value), "__set_name__", None)
                if set_name is not None:
                    set_name(value, cls, key)
            if registry:
                for sub in registry:
                    cls.register(sub)  # type: ignore[attr-defined]
            if members:
                member_map = cls.__members__  # type: ignore[attr-defined]
                for name, member_attrs in members.items():
                    member_map[name].__dict__.update(member_attrs)
        except BaseException:
            # A half-built class must not be handed out again under its id.
            cid = known_id(cls)
            if cid is not None and _CLASS_BY_ID.get(cid) is cls:
                del _CLASS_BY_ID[cid]
            raise
    return cls


# --------------------------------------------------------------------------------------------
# TypeVar, ParamSpec, TypeVarTuple: one object per id in a process

def known_typevar_id(tv: Any) -> Optional[str]:
    """The id a TypeVar-like object already has in this process (assigned or loaded), or None."""
    return _known(_ID_BY_TYPEVAR, tv)


def assign_typevar_id(tv: Any, digest: str) -> str:
    """Give a TypeVar-like object its id for life, as :func:`assign_id` does a class."""
    return _assign(_ID_BY_TYPEVAR, _TYPEVAR_BY_ID, tv, digest)


_ABSENT: Any = object()  # an argument older pickles do not carry (or a TypeVar without default)


def make_typevar(*args: Any) -> Any:
    """``make_typevar(kind, name, bound, constraints, covariant, contravariant, infer_variance,
    tid[, module[, default]])``: the TypeVar (or ParamSpec, TypeVarTuple) with id ``tid``: the
    one this process holds, else a new one, with ``__module__`` set to ``module`` and the PEP
    696 ``default`` (3.13+) when the pickle has them (pickles made before those were carried
    end at ``tid``)."""
    unpack(REBUILD_MAKE_TYPEVAR, args)
    kind, name, bound, constraints, covariant, contravariant, infer_variance, tid = args[:8]
    module = args[8] if len(args) > 8 else _ABSENT
    default = args[9] if len(args) > 9 else _ABSENT
    if not (isinstance(kind, type) and kind.__name__ in _TYPEVAR_KINDS):
        raise corrupt(REBUILD_MAKE_TYPEVAR, "kind", "TypeVar, ParamSpec or TypeVarTuple", kind)
    if type(name) is not str:
        raise corrupt(REBUILD_MAKE_TYPEVAR, "name", "a str", name)
    if type(constraints) is not tuple:
        raise corrupt(REBUILD_MAKE_TYPEVAR, "constraints", "a tuple", constraints)
    for flag, value in (("covariant", covariant), ("contravariant", contravariant),
                        ("infer_variance", infer_variance)):
        if type(value) is not bool:
            raise corrupt(REBUILD_MAKE_TYPEVAR, flag, "a bool", value)
    if type(tid) is not str:
        raise corrupt(REBUILD_MAKE_TYPEVAR, "id", "a str", tid)
    if module is not _ABSENT and type(module) is not str:
        raise corrupt(REBUILD_MAKE_TYPEVAR, "module", "a str", module)
    try:
        return _make_typevar(kind, name, bound, constraints, covariant, contravariant,
                             infer_variance, tid, module, default)
    except (TypeError, ValueError, SyntaxError, IndexError) as exc:
        # What the constructor refuses: a constraint list of one, both variances, a string
        # bound that is no expression (3.10/3.11 compile it; 3.12 indexes an empty one), ...
        raise invalid(REBUILD_MAKE_TYPEVAR, "arguments", f"were refused: {exc}") from None


_TYPEVAR_KINDS = ("TypeVar", "ParamSpec", "TypeVarTuple")


def _make_typevar(kind: Any, name: str, bound: Any, constraints: tuple, covariant: bool,
                  contravariant: bool, infer_variance: bool, tid: str, module: Any,
                  default: Any) -> Any:
    with _LOCK:
        existing = _TYPEVAR_BY_ID.get(tid)
        if existing is not None:
            return existing
        kwargs: Dict[str, Any] = {}
        if kind is typing.TypeVar or getattr(kind, "__name__", "") == "ParamSpec":
            kwargs = {"bound": bound, "covariant": covariant, "contravariant": contravariant}
            if infer_variance:
                kwargs["infer_variance"] = True
        if default is not _ABSENT:
            if not hasattr(typing, "NoDefault"):
                raise UnpicklingError(
                    f"the pickled {getattr(kind, '__name__', 'TypeVar')} {name!r} has a default "
                    "(PEP 696), which needs Python 3.13 or later")
            kwargs["default"] = default
        args = tuple(constraints) if kind is typing.TypeVar else ()
        tv = kind(name, *args, **kwargs)
        if module is not _ABSENT:
            tv.__module__ = module
        _remember(tv, tid, False, _ID_BY_TYPEVAR, _TYPEVAR_BY_ID)
        return tv


RECONSTRUCTORS: Tuple[Callable[..., Any], ...] = (make_class, make_typevar)
