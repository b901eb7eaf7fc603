"""Modules in pickles, and the registry of modules whose contents pickle by value."""

import sys
import threading
from pickle import PicklingError
from types import ModuleType
from typing import Any, FrozenSet, List

from . import _rebuild

_LOCK = threading.Lock()

# Names of modules registered with register_pickle_by_value. A frozenset that is replaced, never
# mutated, so readers on other threads always see a consistent snapshot without locking.
BY_VALUE: FrozenSet[str] = frozenset()


def register_pickle_by_value(module: ModuleType) -> None:
    """Pickle the functions and classes of ``module`` (and its submodules) by value.

    Use it for code the loading side cannot import (a local package, a notebook helper module).
    """
    global BY_VALUE
    if not isinstance(module, ModuleType):
        raise ValueError(f"register_pickle_by_value expects a module, got {type(module).__name__}")
    name = module.__name__
    if sys.modules.get(name) is not module:
        raise ValueError(
            f"{module!r} is not in sys.modules under its name {name!r}; only imported modules "
            "can be registered"
        )
    with _LOCK:
        BY_VALUE = BY_VALUE | {name}


def unregister_pickle_by_value(module: ModuleType) -> None:
    """Undo :func:`register_pickle_by_value`."""
    global BY_VALUE
    if not isinstance(module, ModuleType):
        raise ValueError(
            f"unregister_pickle_by_value expects a module, got {type(module).__name__}")
    name = module.__name__
    with _LOCK:
        if name not in BY_VALUE:
            raise ValueError(f"{module!r} is not registered for pickling by value")
        BY_VALUE = BY_VALUE - {name}


def list_registry_pickle_by_value() -> List[str]:
    """Names of the modules registered for pickling by value, sorted."""
    return sorted(BY_VALUE)


def is_by_value_name(module_name: str, registered: FrozenSet[str]) -> bool:
    """Whether ``module_name`` is in ``registered`` (a snapshot of :data:`BY_VALUE`), or is a
    submodule of a module in it."""
    if module_name in registered:
        return True
    dot = module_name.rfind(".")
    while dot > 0:
        module_name = module_name[:dot]
        if module_name in registered:
            return True
        dot = module_name.rfind(".")
    return False


_NOT_STATE = frozenset({"__builtins__"})


def reduce_module(pickler: Any, module: ModuleType) -> tuple:
    """Importable modules by reference; dynamic or registered ones by value."""
    name = module.__name__
    if type(name) is not str:
        raise PicklingError(
            f"cannot pickle module {module!r}: its __name__ is a {type(name).__name__}, not a str")
    if (sys.modules.get(name) is module
            and not (pickler._by_value and is_by_value_name(name, pickler._by_value))):
        return (_rebuild.import_module, (name,))
    state = {k: v for k, v in vars(module).items() if k not in _NOT_STATE}
    return (_rebuild.make_module, (name,), state, None, None, _rebuild.set_module_state)
