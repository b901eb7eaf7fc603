"""Modules in pickles, and the registry of modules whose contents pickle by value."""

import builtins
import sys
import threading
from pickle import PicklingError
from types import ModuleType
from typing import Any, FrozenSet, Set, Tuple

from . import _bytecode, _fork, _rebuild

_LOCK = threading.Lock()


@_fork.in_child
def _after_fork_in_child() -> None:
    # Another thread may have held the lock at the fork (see _fork); BY_VALUE is whole.
    global _LOCK
    _LOCK = threading.Lock()


# Names of modules registered with register_pickle_by_value. A frozenset that is replaced, never
# mutated, so readers on other threads always see a consistent snapshot without locking.
BY_VALUE: FrozenSet[str] = frozenset()

_BUILTINS_DICT = vars(builtins)


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


def list_registry_pickle_by_value() -> Set[str]:
    """Names of the modules registered for pickling by value (a new set, as cloudpickle's)."""
    return set(BY_VALUE)


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


def local_module_name(func: Any, head: Tuple[int, str], registered: FrozenSet[str]) -> Any:
    """The name of the imported module that a function's closure cell or parameter default
    named in ``head`` (a local chain head of ``CodeInfo.chains``) holds, else None."""
    kind, name = head
    code = func.__code__
    value: Any = _MISSING
    if kind == _bytecode.HEAD_DEREF:
        freevars = code.co_freevars
        if name in freevars:
            closure = func.__closure__
            try:
                value = closure[freevars.index(name)].cell_contents
            except (ValueError, TypeError, IndexError):  # an empty cell
                return None
    if value is _MISSING:  # a parameter: its default, if it has one
        argcount = code.co_argcount
        params = code.co_varnames[:argcount + code.co_kwonlyargcount]
        if name not in params:
            return None
        i = params.index(name)
        if i < argcount:
            defaults = func.__defaults__
            if not defaults or i < argcount - len(defaults):
                return None
            value = defaults[i - (argcount - len(defaults))]
        else:
            kwdefaults = func.__kwdefaults__
            if not kwdefaults or name not in kwdefaults:
                return None
            value = kwdefaults[name]
    if type(value) is not ModuleType:
        return None
    module_name = value.__name__
    if type(module_name) is not str or sys.modules.get(module_name) is not value:
        return None
    if registered and is_by_value_name(module_name, registered):
        return None
    return module_name


_MISSING = object()


class _LoaderBuiltins:
    """Stands for ``builtins.__dict__`` in a dynamic module's state: the loading process's
    own builtins namespace, never a copy of this one's."""

    __slots__ = ()

    def __reduce__(self) -> tuple:
        return (vars, (builtins,))


_LOADER_BUILTINS = _LoaderBuiltins()


def reduce_module(pickler: Any, module: ModuleType) -> tuple:
    """Importable modules by reference; dynamic or registered ones by value."""
    name = module.__name__
    if type(name) is not str:
        raise PicklingError(
            f"cannot pickle module {module!r}: its __name__ is a {type(name).__name__}, not a str")
    if (sys.modules.get(name) is module
            and not (pickler._by_value and is_by_value_name(name, pickler._by_value))):
        return (_rebuild.import_module, (name,))
    # Every entry is kept, ``__builtins__`` included (``exec`` puts the builtins dict there): as
    # a reference to the loader's builtins when it is this process's builtins module or dict.
    state = dict(vars(module))
    if state.get("__builtins__") is _BUILTINS_DICT:
        state["__builtins__"] = _LOADER_BUILTINS
    # A subclass (a module with properties or a __getattr__ of its class) keeps its class.
    kind = type(module)
    args = (name,) if kind is ModuleType else (name, kind)
    return (_rebuild.make_module, args, state, None, None, _rebuild.set_module_state)
