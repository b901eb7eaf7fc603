"""fastfnpickle: pickle lambdas, closures, ``__main__`` functions and dynamic classes, fast.

A drop-in ``pickle_module``: ``dumps``/``dump`` pickle by value what the stdlib can only pickle
by name, and the stdlib's ``pickle.loads``/``pickle.load`` read the result in any process where
fastfnpickle is importable. With ``key=``, pickles are signed (HMAC-SHA256) and refused unread
when the tag does not verify; see :mod:`fastfnpickle.signing`.
"""

import pickle
from pickle import HIGHEST_PROTOCOL, PicklingError, Unpickler, UnpicklingError
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


_BufferCallback = Optional[Callable[[pickle.PickleBuffer], Any]]
_pickle_load = pickle.load
_pickle_loads = pickle.loads


def dump(obj: Any, file: Any, protocol: Optional[int] = None,
         buffer_callback: _BufferCallback = None, *, key: Optional[bytes] = None) -> None:
    """Write the pickle of ``obj`` to the binary ``file`` (signed with ``key`` if given)."""
    if key is not None:
        from . import signing

        signing.dump(obj, file, key, protocol, buffer_callback)
        return
    Pickler(file, protocol, buffer_callback=buffer_callback).dump(obj)


def dumps(obj: Any, protocol: Optional[int] = None, buffer_callback: _BufferCallback = None,
          *, key: Optional[bytes] = None) -> bytes:
    """The pickle of ``obj`` as bytes; functions and classes the stdlib cannot find by name
    are pickled by value. With ``key``, the bytes are a signed envelope for :func:`loads`."""
    if key is not None:
        from . import signing

        return signing.dumps(obj, key, protocol, buffer_callback)
    return _active_core.dumps(obj, protocol, buffer_callback)


def loads(data: Any, /, *, key: Optional[bytes] = None, fix_imports: bool = True,
          encoding: str = "ASCII", errors: str = "strict", buffers: Any = None) -> Any:
    """``pickle.loads``; with ``key``, first verify the signature made by ``dumps(key=...)``
    and refuse (:class:`UnpicklingError`) anything that does not verify, before unpickling.

    Loading an unsigned pickle runs whatever code its author chose: only load those from
    sources you trust.
    """
    if key is None:
        return _pickle_loads(data, fix_imports=fix_imports, encoding=encoding, errors=errors,
                             buffers=buffers)
    from . import signing

    return signing.loads(data, key, fix_imports=fix_imports, encoding=encoding, errors=errors,
                         buffers=buffers)


def load(file: Any, *, key: Optional[bytes] = None, fix_imports: bool = True,
         encoding: str = "ASCII", errors: str = "strict", buffers: Any = None) -> Any:
    """``pickle.load``; with ``key``, as :func:`loads` for one signed envelope from ``file``."""
    if key is None:
        return _pickle_load(file, fix_imports=fix_imports, encoding=encoding, errors=errors,
                            buffers=buffers)
    from . import signing

    return signing.load(file, key, fix_imports=fix_imports, encoding=encoding, errors=errors,
                        buffers=buffers)


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
