"""Dask distributed: ship task functions and results through fastfnpickle.

Dask pickles task functions, their arguments and results with
``distributed.protocol.pickle.dumps`` (the ``serializers=`` option of the client does not reach
them). :func:`install` replaces that function in the current process, so it has to run in every
process that pickles: the client, the scheduler and each worker.

- Client: call ``fastfnpickle.distributed.install()`` before submitting work. A ``LocalCluster``
  runs its scheduler in the client process, so this covers the scheduler too.
- Workers (and a scheduler of its own): start them with ``--preload fastfnpickle.distributed``
  (``dask worker``/``dask scheduler``), ``preload=["fastfnpickle.distributed"]``
  (``LocalCluster``, ``Worker``, ``Scheduler``) or the ``distributed.worker.preload`` /
  ``distributed.scheduler.preload`` config keys: this module is its own preload
  (:func:`dask_setup`).

Importing this module changes nothing.
"""

import sys
import threading
from typing import Any, Callable, Dict, List, Optional

import fastfnpickle
from fastfnpickle import _fork

__all__ = ["dask_setup", "dumps", "install", "installed", "uninstall"]

_LOCK = threading.Lock()
_ORIGINAL: Dict[str, Callable[..., bytes]] = {}


@_fork.in_child
def _after_fork_in_child() -> None:
    # Another thread may have held the lock at the fork (see _fork); an install stays.
    global _LOCK
    _LOCK = threading.Lock()


def dumps(x: Any, *, buffer_callback: Optional[Callable[[Any], Any]] = None,
          protocol: Optional[int] = None) -> bytes:
    """Drop-in for ``distributed.protocol.pickle.dumps`` that pickles with fastfnpickle.

    Objects only dask's own serializer registrations can handle (fastfnpickle raises on them)
    go to dask's original function.
    """
    if not protocol:
        protocol = fastfnpickle.HIGHEST_PROTOCOL
    buffers: List[Any] = []
    collect = buffers.append if protocol >= 5 and buffer_callback is not None else None
    try:
        result = fastfnpickle.dumps(x, protocol, buffer_callback=collect)
    except Exception:
        original = _ORIGINAL.get("dumps")
        if original is None:
            raise
        return original(x, buffer_callback=buffer_callback, protocol=protocol)
    if buffer_callback is not None:
        for buffer in buffers:
            buffer_callback(buffer)
    return result


def _distributed_modules() -> List[Any]:
    # Some of distributed's modules bind ``dumps`` at import (client, scheduler, plugins).
    return [module for name, module in list(sys.modules.items())
            if module is not None and (name == "distributed" or name.startswith("distributed."))]


def install() -> None:
    """Make this process pickle Dask tasks and results with fastfnpickle. Idempotent."""
    from distributed.protocol import pickle as dask_pickle

    with _LOCK:
        if _ORIGINAL:
            return
        original = dask_pickle.dumps
        _ORIGINAL["dumps"] = original
        for module in _distributed_modules():
            if getattr(module, "dumps", None) is original:
                module.dumps = dumps


def uninstall() -> None:
    """Give this process dask's own ``dumps`` back."""
    with _LOCK:
        original = _ORIGINAL.pop("dumps", None)
        if original is None:
            return
        for module in _distributed_modules():
            if getattr(module, "dumps", None) is dumps:
                module.dumps = original


def installed() -> bool:
    """Whether :func:`install` is in effect in this process."""
    return bool(_ORIGINAL)


def dask_setup(server: Any = None) -> None:
    """Preload hook: ``--preload fastfnpickle.distributed`` on a worker or scheduler installs
    fastfnpickle there."""
    install()
