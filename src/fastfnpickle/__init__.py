"""fastfnpickle: pickle lambdas, closures, ``__main__`` functions and dynamic classes, fast.

A drop-in ``pickle_module``: ``dumps``/``dump`` pickle by value what the stdlib can only pickle
by name, and the stdlib's ``pickle.loads``/``pickle.load`` read the result in any process where
fastfnpickle is importable. With ``key=``, pickles are signed (HMAC-SHA256) and refused unread
when the tag does not verify; see :mod:`fastfnpickle.signing`.
"""

import pickle as _pickle
from pickle import HIGHEST_PROTOCOL, PicklingError, Unpickler, UnpicklingError
from typing import Any as _Any
from typing import Callable as _Callable
from typing import List as _List
from typing import Optional as _Optional

from ._format import PicklingRecursionError
from ._impl import IMPLEMENTATION
from ._impl import core as _active_core
from ._modules import (
    list_registry_pickle_by_value,
    register_pickle_by_value,
    unregister_pickle_by_value,
)
from ._version import __version__
from .explain import explain

DEFAULT_PROTOCOL: int = _pickle.HIGHEST_PROTOCOL
Pickler = _active_core.Pickler


_BufferCallback = _Optional[_Callable[[_pickle.PickleBuffer], _Any]]
_pickle_load = _pickle.load
_pickle_loads = _pickle.loads


def dump(obj: _Any, file: _Any, protocol: _Optional[int] = None,
         buffer_callback: _BufferCallback = None, *, key: _Optional[bytes] = None) -> None:
    """Write the pickle of ``obj`` to the binary ``file`` (signed with ``key`` if given)."""
    if key is not None:
        from . import signing

        signing.dump(obj, file, key, protocol, buffer_callback)
        return
    Pickler(file, protocol, buffer_callback=buffer_callback).dump(obj)


def dumps(obj: _Any, protocol: _Optional[int] = None, buffer_callback: _BufferCallback = None,
          *, key: _Optional[bytes] = None) -> bytes:
    """The pickle of ``obj`` as bytes; functions and classes the stdlib cannot find by name
    are pickled by value. With ``key``, the bytes are a signed envelope for :func:`loads`."""
    if key is not None:
        from . import signing

        return signing.dumps(obj, key, protocol, buffer_callback)
    return _active_core.dumps(obj, protocol, buffer_callback)


def loads(data: _Any, /, *, key: _Optional[bytes] = None, fix_imports: bool = True,
          encoding: str = "ASCII", errors: str = "strict", buffers: _Any = None) -> _Any:
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


def load(file: _Any, *, key: _Optional[bytes] = None, fix_imports: bool = True,
         encoding: str = "ASCII", errors: str = "strict", buffers: _Any = None) -> _Any:
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


def __getattr__(name: str) -> _Any:
    # Integrations load on first use: `import fastfnpickle` stays cheap and changes nothing.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> _List[str]:
    # The public API, not the names this module imports to build it.
    return sorted(__all__)


__all__ = [
    "DEFAULT_PROTOCOL", "HIGHEST_PROTOCOL", "IMPLEMENTATION", "Pickler", "PicklingError",
    "PicklingRecursionError", "ProcessPoolExecutor", "by_value", "disable_multiprocessing",
    "enable_multiprocessing", "Unpickler", "UnpicklingError", "__version__", "dump", "dumps",
    "explain", "list_registry_pickle_by_value", "load", "loads", "register_pickle_by_value",
    "unregister_pickle_by_value",
]
