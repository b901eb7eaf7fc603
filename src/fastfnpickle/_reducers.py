"""Small reducers for objects the stdlib cannot pickle, shared by both implementations.

``DISPATCH`` maps an exact type to ``reducer(pickler, obj)``; the pickler consults it after
its hot path. A reducer returns a reduce tuple or NotImplemented (fall back to the stdlib).
"""

import abc
import copyreg
import dataclasses
import functools
import operator
import sys
import typing
import weakref
from collections import OrderedDict
from pickle import PicklingError
from types import GetSetDescriptorType, MappingProxyType, MemberDescriptorType, MethodType
from typing import Any, Callable, Dict, cast

from . import _classes, _deferred, _fork, _rebuild, _streams, _wrappers


def _mappingproxy(pickler: Any, obj: MappingProxyType) -> tuple:
    return (MappingProxyType, (dict(obj),))


def _view(kind: str, mapping_type: Any) -> Callable[[Any, Any], tuple]:
    def reduce_view(pickler: Any, view: Any) -> tuple:
        # A view only exposes a read-only proxy of its dict (3.10+), so the view is rebuilt
        # over a copy of the same type.
        proxy = getattr(view, "mapping", None)
        if proxy is not None:
            mapping = mapping_type(proxy)
        elif kind == "keys":
            mapping = mapping_type.fromkeys(view)
        elif kind == "values":
            mapping = mapping_type(enumerate(view))
        else:
            mapping = mapping_type(view)
        return (_rebuild.dict_view, (mapping, kind))
    return reduce_view


def _weakset(pickler: Any, obj: weakref.WeakSet) -> tuple:
    return (weakref.WeakSet, (list(obj),))


def _method(pickler: Any, obj: MethodType) -> Any:
    owner = obj.__self__
    name = getattr(obj.__func__, "__name__", None)
    qualname = getattr(obj.__func__, "__qualname__", None)
    if (type(name) is str and type(qualname) is str and name.startswith("__")
            and qualname.rpartition(".")[2] == name):
        # 3.15+: a private method is the name-mangled attribute, as the stdlib finds it.
        name = _deferred.qualname_path(qualname)[-1]
    if type(name) is str and _defined_by_reference(owner, name, pickler._by_value):
        # As the stdlib does (getattr(self, name)) when that finds the method again.
        try:
            if getattr(owner, name, None) == obj:
                return NotImplemented
        except Exception:
            pass
    # A method a by-value class defines itself is rebuilt from its parts: inside the class's
    # own state (pydantic's validators, an enum's alias of a classmethod) getattr(self, name)
    # would run before the class has its methods.
    return (MethodType, (obj.__func__, owner))


def _defined_by_reference(owner: Any, name: str, registered: Any) -> bool:
    """Whether the class that defines ``name`` for ``owner`` (a class or an instance) pickles
    by reference: then looking the method up on load needs nothing from this pickle (a
    pydantic model's inherited classmethods)."""
    cls = owner if issubclass(type(owner), type) else type(owner)
    try:
        mro = type.__dict__["__mro__"].__get__(cls)
    except TypeError:
        return False
    for klass in mro:
        if name in klass.__dict__:
            return _classes.by_reference(klass, klass.__qualname__, registered)
    return False


def _wrapper(pickler: Any, obj: Any) -> tuple:
    return (type(obj), (obj.__func__,))


def _property(pickler: Any, obj: property) -> tuple:
    return (property, (obj.fget, obj.fset, obj.fdel, obj.__doc__))


def _typed_property(pickler: Any, obj: property) -> tuple:
    # Subclasses of property (abc.abstractproperty) take the same arguments.
    return (type(obj), (obj.fget, obj.fset, obj.fdel, obj.__doc__))


def _memoryview(pickler: Any, obj: memoryview) -> tuple:
    """A memoryview as a copy of its bytes (in C order, so strided views work), with its
    format and shape; a writable view loads writable."""
    fmt = obj.format
    shape = obj.shape or ()
    if fmt != "B" or len(shape) != 1:
        try:  # only native single-item formats can be cast back on load
            cast(Any, memoryview(bytes(obj.itemsize))).cast(fmt)
        except (TypeError, ValueError):
            raise PicklingError(
                f"cannot pickle a memoryview of format {fmt!r}: only native single-item "
                "formats can be rebuilt; pickle view.tobytes() or view.tolist() instead"
            ) from None
    return (_rebuild.memory, (obj.tobytes(), fmt, shape, obj.readonly))


def _cached_property(pickler: Any, obj: functools.cached_property) -> tuple:
    return (functools.cached_property, (obj.func,))


def _descriptor(pickler: Any, obj: Any) -> tuple:
    return (getattr, (obj.__objclass__, obj.__name__))


def _dataclass_field(pickler: Any, field: dataclasses.Field) -> tuple:
    # As the stdlib would (slots state), with defaults such as frozensets written in a stable
    # order: a Field sits one level below the class dict, out of the class reducer's reach.
    cls: Any = type(field)
    slots = cls.__slots__
    try:
        # All slots in one C call.
        state = dict(zip(slots, _slot_getter(cls, slots)(field), strict=True))
    except AttributeError:  # a slot left unset
        state = {name: getattr(field, name) for name in slots if hasattr(field, name)}
    for name, value in state.items():
        t = type(value)
        if t is set or t is frozenset:
            state[name] = pickler._stable(value)
    field_name = state.get("name")
    if type(field_name) is str:
        # The field's name is its class attribute's name: one interned object wherever the
        # class is, so the class pickles to the same bytes again where it was loaded.
        state["name"] = sys.intern(field_name)
    return (_NEWOBJ, (cls,), (None, state))


_NEWOBJ: Callable[..., Any] = vars(copyreg)["__newobj__"]  # missing from the stubs


@functools.lru_cache(maxsize=None)
def _slot_getter(cls: type, slots: tuple) -> Callable[[Any], tuple]:
    getter = operator.attrgetter(*slots)
    return getter if len(slots) > 1 else (lambda obj: (getter(obj),))


_fork.in_child(_slot_getter.cache_clear)  # a cache (see _fork)


# Module-level singletons whose identity matters (``field._field_type is _FIELD``): by name.
_SINGLETONS: Dict[int, tuple] = {}


def _singleton(pickler: Any, obj: Any) -> Any:
    ref = _SINGLETONS.get(id(obj))
    return NotImplemented if ref is None else ref


DISPATCH: Dict[type, Callable[[Any, Any], Any]] = {
    MappingProxyType: _mappingproxy,
    weakref.WeakSet: _weakset,
    MethodType: _method,
    classmethod: _wrapper,
    staticmethod: _wrapper,
    property: _property,
    functools.cached_property: _cached_property,
    abc.abstractclassmethod: _wrapper,
    abc.abstractstaticmethod: _wrapper,
    abc.abstractproperty: _typed_property,
    memoryview: _memoryview,
    GetSetDescriptorType: _descriptor,
    MemberDescriptorType: _descriptor,
    dataclasses.Field: _dataclass_field,
}

DISPATCH.update(_streams.DISPATCH)
DISPATCH.update(_wrappers.DISPATCH)

for _kind in ("keys", "values", "items"):
    DISPATCH[type(getattr({}, _kind)())] = _view(_kind, dict)
    DISPATCH[type(getattr(OrderedDict(), _kind)())] = _view(_kind, OrderedDict)

for _cls in (getattr(typing, n, None) for n in ("TypeVar", "ParamSpec", "TypeVarTuple")):
    if _cls is not None:
        DISPATCH[_cls] = _classes.reduce_typevar

for _name in ("MISSING", "KW_ONLY", "_FIELD", "_FIELD_CLASSVAR", "_FIELD_INITVAR",
              "_HAS_DEFAULT_FACTORY"):
    _obj = getattr(dataclasses, _name, None)
    if _obj is not None:
        _SINGLETONS[id(_obj)] = (getattr, (dataclasses, _name))
        DISPATCH.setdefault(type(_obj), _singleton)
del _kind, _cls, _name, _obj
