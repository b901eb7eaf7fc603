"""fastfnpickle: pickle lambdas, closures, ``__main__`` functions and dynamic classes, fast.

A drop-in ``pickle_module``: ``dumps``/``dump`` pickle by value what the stdlib can only pickle
by name, and the stdlib's ``loads``/``load`` read the result in any process where fastfnpickle
is importable.
"""

import pickle
from pickle import HIGHEST_PROTOCOL, PicklingError, Unpickler, UnpicklingError, load, loads
from typing import Any, Callable, Optional

from . import _rebuild  # noqa: F401  (binds the stable reconstructor names first)
from ._impl import IMPLEMENTATION, core as _active_core
from .explain import explain
from ._modules import (
    list_registry_pickle_by_value,
    register_pickle_by_value,
    unregister_pickle_by_value,
)
from ._format import PicklingRecursionError
from ._version import __version__

DEFAULT_PROTOCOL: int = pickle.HIGHEST_PROTOCOL
Pickler = _active_core.Pickler


def dump(obj: Any, file: Any, protocol: Optional[int] = None,
         buffer_callback: Optional[Callable[[pickle.PickleBuffer], Any]] = None) -> None:
    """Write the pickle of ``obj`` to the binary ``file``."""
    Pickler(file, protocol, buffer_callback=buffer_callback).dump(obj)


def dumps(obj: Any, protocol: Optional[int] = None,
          buffer_callback: Optional[Callable[[pickle.PickleBuffer], Any]] = None) -> bytes:
    """The pickle of ``obj`` as bytes; functions and classes the stdlib cannot find by name
    are pickled by value."""
    return _active_core.dumps(obj, protocol, buffer_callback)


_LAZY = {
    "ProcessPoolExecutor": "futures", "by_value": "futures",
    "enable_multiprocessing": "futures", "disable_multiprocessing": "futures",
}


def __getattr__(name: str) -> Any:
    # Integrations load on first use: `import fastfnpickle` stays cheap and changes nothing.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_PROTOCOL", "HIGHEST_PROTOCOL", "IMPLEMENTATION", "Pickler", "PicklingError",
    "PicklingRecursionError", "ProcessPoolExecutor", "by_value", "disable_multiprocessing",
    "enable_multiprocessing",
    "Unpickler", "UnpicklingError", "__version__", "dump", "dumps", "explain", "list_registry_pickle_by_value",
    "load", "loads", "register_pickle_by_value", "unregister_pickle_by_value",
]
