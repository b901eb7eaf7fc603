"""The stable names pickles call on load.

Every reconstructor a pickle references lives at ``fastfnpickle._rebuild.<name>``, whichever
implementation made the pickle: the hot ones are bound here to the load twin (compiled or
pure-Python) and renamed to this module, so a pickle from either loads under the other.

This is the top of the load side: it imports nothing from the dump side, so loading a pickle
never pulls in the pickler.
"""

import importlib
from types import ModuleType
from typing import Any, Callable, TypeVar

from . import _class_registry, _reconstruct
from ._corrupt import corrupt, invalid, unpack
from ._env import env_flag
from ._format import (
    REBUILD_DICT_VIEW,
    REBUILD_IMPORT_MODULE,
    REBUILD_MAKE_MODULE,
    REBUILD_SET_MODULE_STATE,
)


def _choose_load_twin() -> ModuleType:
    # The same rule as the dump side's choice (``_impl``): the env switch forces the pure
    # twin, else the compiled one when it imports.
    if not env_flag("FASTFNPICKLE_NO_EXTENSIONS"):
        try:
            from . import _load
        except ImportError:
            pass
        else:
            return _load
    from . import _load_py

    return _load_py


_load: ModuleType = _choose_load_twin()

#: "cython" or "python": the load twin that is bound here.
LOAD_IMPLEMENTATION: str = "python" if _load.__name__.endswith("_py") else "cython"

_F = TypeVar("_F", bound=Callable[..., Any])


def _export(fn: _F, name: str) -> _F:
    # The C pickler writes a global as obj.__module__ + obj.__qualname__ and checks that the
    # lookup gives obj back; point both at this module.
    fn.__module__ = __name__
    fn.__qualname__ = name
    return fn


function = _export(_load.function, "function")
code = _export(_load.code, "code")
make_cell = _export(_load.make_cell, "make_cell")
fill_cell = _export(_load.fill_cell, "fill_cell")
closure_cell = _export(_load.closure_cell, "closure_cell")


def import_module(*args: Any) -> ModuleType:
    """A module pickled by reference: ``import_module(name)``."""
    (name,) = unpack(REBUILD_IMPORT_MODULE, args)
    if type(name) is not str:
        raise corrupt(REBUILD_IMPORT_MODULE, "name", "a str", name)
    if not name or name.startswith("."):
        raise invalid(REBUILD_IMPORT_MODULE, "name", "is not an absolute module name")
    return importlib.import_module(name)


def make_module(*args: Any) -> ModuleType:
    """An empty dynamic module: ``make_module(name[, kind])``, of the ``ModuleType`` subclass
    ``kind`` when one was pickled; :func:`set_module_state` fills it."""
    name = unpack(REBUILD_MAKE_MODULE, args)[0]
    kind = args[1] if len(args) == 2 else None
    if type(name) is not str:
        raise corrupt(REBUILD_MAKE_MODULE, "name", "a str", name)
    if kind is None:
        return ModuleType(name)
    if not (isinstance(kind, type) and issubclass(kind, ModuleType)):
        raise corrupt(REBUILD_MAKE_MODULE, "kind", "a module type", kind)
    # As pickle makes instances: the subclass's own __init__ is not run, the state follows.
    module = ModuleType.__new__(kind)
    ModuleType.__init__(module, name)
    return module


def set_module_state(*args: Any) -> ModuleType:
    """``set_module_state(module, namespace)``: the dynamic module filled in."""
    module, state = unpack(REBUILD_SET_MODULE_STATE, args)
    if not isinstance(module, ModuleType):
        raise corrupt(REBUILD_SET_MODULE_STATE, "module", "a module", module)
    if type(state) is not dict:
        raise corrupt(REBUILD_SET_MODULE_STATE, "state", "a dict", state)
    module.__dict__.update(state)
    return module


def dict_view(*args: Any) -> Any:
    """``dict_view(mapping, kind)``: ``mapping.keys()`` / ``.values()`` / ``.items()``."""
    mapping, kind = unpack(REBUILD_DICT_VIEW, args)
    if not isinstance(mapping, dict):
        raise corrupt(REBUILD_DICT_VIEW, "mapping", "a dict", mapping)
    if type(kind) is not str or kind not in ("keys", "values", "items"):
        raise corrupt(REBUILD_DICT_VIEW, "kind", "'keys', 'values' or 'items'", kind)
    return getattr(mapping, kind)()


# Memoryviews, file copies, functools wrappers and NewTypes.
memory = _export(_reconstruct.memory, "memory")
file_copy = _export(_reconstruct.file_copy, "file_copy")
lru_cache = _export(_reconstruct.lru_cache, "lru_cache")
singledispatch = _export(_reconstruct.singledispatch, "singledispatch")
singledispatch_state = _export(_reconstruct.singledispatch_state, "singledispatch_state")
new_type = _export(_reconstruct.new_type, "new_type")

# Class-level reconstructors live with the class registry they use.
make_class = _export(_class_registry.make_class, "make_class")
make_typevar = _export(_class_registry.make_typevar, "make_typevar")

# The reconstructors themselves always pickle by reference (checked first on the hot path).
OWN_FUNCTIONS = frozenset(
    obj for obj in list(globals().values())
    if callable(obj) and getattr(obj, "__module__", None) == __name__
)
