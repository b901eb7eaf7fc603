"""What a process made by ``fork()`` puts right before it runs anything else.

``fork()`` copies the process as one thread sees it, while the others are stopped wherever they
were: a lock another thread held stays held in the child, by a thread that does not exist
there, and the first pickle that needs it waits forever (``multiprocessing``'s fork start
method, PyTorch ``DataLoader`` workers and pre-forking servers all fork threaded parents). So
every module with process-wide state registers a reset here, next to that state (a new lock
or cache comes with its reset in the same place; modules never imported register nothing):

- **Locks** are made anew.
- **Caches** are emptied: the child starts with what a fresh process has. (The compiled core
  counts an entry as in use while a pickle in progress holds it; in the child those pickles
  belonged to threads that are gone.)
- **Registries are kept**, as the child inherited them on purpose: the classes and TypeVars
  the process holds under their ids, the modules registered by value, the ``multiprocessing``
  and Dask switches. Only a registration another thread was half-way through writing is
  undone (``_class_registry``); the next pickle of that object registers it again.

The resets run in the child, in the order they were registered, before ``os.fork()`` returns
there (``os.register_at_fork``); platforms without ``fork()`` never call them.
"""

import os
from typing import Callable

_Reset = Callable[[], None]


def in_child(reset: _Reset) -> _Reset:
    """Run ``reset`` in every child forked from now on (a decorator; returns ``reset``)."""
    register = getattr(os, "register_at_fork", None)
    if register is not None:
        # One registration each: CPython reports a reset that raises and still runs the rest.
        register(after_in_child=reset)
    return reset
