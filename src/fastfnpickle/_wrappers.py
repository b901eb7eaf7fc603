"""Pickling ``functools.lru_cache``/``cache`` wrappers, ``functools.singledispatch`` functions
and ``typing.NewType`` by value (dump side).

The stdlib pickles all three by name, which fails on load when they were defined in
``__main__`` or in a module registered by value. Here such ones travel by value: the wrapped
function by value, rebuilt with the same cache settings (an empty cache) or the same dispatch
registry (an empty dispatch cache); a NewType with the same name, supertype and module.
Importable ones still pickle by name.
"""

import functools
import sys
import typing
from types import CodeType
from typing import Any, Callable, Dict, FrozenSet, Optional

from . import _deferred, _modules, _rebuild

_DYNAMIC_MODULES = frozenset({"__main__", "__mp_main__"})
_MISSING = object()


def _by_reference(obj: Any, registered: FrozenSet[str]) -> bool:
    """Whether ``obj`` is found again as ``obj.__module__`` + ``obj.__qualname__`` on load."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if type(module_name) is not str or type(qualname) is not str:
        return False
    if module_name in _DYNAMIC_MODULES or "<locals>" in qualname:
        return False
    if registered and _modules.is_by_value_name(module_name, registered):
        return False
    found: Any = sys.modules.get(module_name)
    if found is None:
        return False
    for part in _deferred.qualname_path(qualname):  # 3.15+: private names mangled
        found = getattr(found, part, None)
        if found is None:
            return False
    return found is obj


def _extra_attrs(wrapper: Any, func: Any, own: FrozenSet[str]) -> Optional[Dict[str, Any]]:
    """Entries of ``wrapper.__dict__`` that rebuilding the wrapper around ``func`` does not
    restore by itself (``functools.update_wrapper`` copies the rest from ``func``)."""
    extra = None
    for key, value in wrapper.__dict__.items():
        if key in own or getattr(func, key, _MISSING) is value:
            continue
        if extra is None:
            extra = {}
        extra[key] = value
    return extra


# Set by lru_cache itself when the wrapper is rebuilt.
_LRU_OWN = frozenset({"__wrapped__", "cache_parameters"})


def reduce_lru_cache(pickler: Any, wrapper: Any) -> Any:
    """An ``lru_cache``/``cache`` wrapper: by name when importable, else the wrapped function by
    value, rebuilt with the same ``maxsize`` and ``typed`` and an empty cache."""
    if _by_reference(wrapper, pickler._by_value):
        return NotImplemented
    func = wrapper.__wrapped__
    params = wrapper.cache_parameters()
    # The wrapper is created from the function alone: a function that calls itself through
    # its global (recursion) meets the wrapper again while its own globals are pickled, and
    # the memo then resolves both to one object.
    return (_rebuild.lru_cache, (func, params["maxsize"], bool(params["typed"])),
            _extra_attrs(wrapper, func, _LRU_OWN))


def _singledispatch_code() -> CodeType:
    def probe(x: Any) -> Any:
        return x
    dispatcher: Any = functools.singledispatch(probe)  # a plain function at run time
    return dispatcher.__code__


# Every singledispatch function is a closure over this one code object of functools.
SINGLEDISPATCH_CODE: CodeType = _singledispatch_code()
_SINGLEDISPATCH_OWN = frozenset({"register", "dispatch", "registry", "_clear_cache",
                                 "__wrapped__"})


def reduce_singledispatch(pickler: Any, wrapper: Any) -> tuple:
    """A ``functools.singledispatch`` function pickled by value: its base function, then the
    registered implementations in registration order. The dispatch cache (weak references of
    this process) is left out; it refills on the first calls after loading."""
    registry = wrapper.registry
    base = registry.get(object, _MISSING)
    if base is _MISSING:
        base = wrapper.__wrapped__
    impls = tuple([(cls, impl) for cls, impl in registry.items() if cls is not object])
    return (_rebuild.singledispatch, (base,),
            (impls, _extra_attrs(wrapper, base, _SINGLEDISPATCH_OWN)),
            None, None, _rebuild.singledispatch_state)


def reduce_new_type(pickler: Any, new_type: Any) -> Any:
    """A ``typing.NewType``: by name when importable, else by name and supertype."""
    if _by_reference(new_type, pickler._by_value):
        return NotImplemented
    return (_rebuild.new_type, (new_type.__name__, new_type.__supertype__,
                                new_type.__qualname__, new_type.__module__))


DISPATCH: Dict[type, Callable[[Any, Any], Any]] = {
    type(functools.lru_cache(maxsize=None)(_singledispatch_code)): reduce_lru_cache,
}
if isinstance(typing.NewType, type):  # a class from 3.10 on
    DISPATCH[typing.NewType] = reduce_new_type
