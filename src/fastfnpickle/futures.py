"""Process pools and ``multiprocessing`` that accept lambdas, closures and ``__main__`` classes.

Three ways in, from narrowest to widest:

- :func:`by_value` wraps one callable so the stdlib pickle (and anything built on it:
  ``multiprocessing.Pool.map``, DataLoader's ``collate_fn``, ...) can ship it.
- :class:`ProcessPoolExecutor` is the stdlib executor whose calls, arguments and results travel
  through fastfnpickle; nothing global changes.
- :func:`enable_multiprocessing` makes every ``multiprocessing`` pickler of this process, and of
  the processes it starts afterwards, use fastfnpickle. :func:`disable_multiprocessing` undoes it.

Importing this module changes nothing.
"""

import concurrent.futures
import functools
import io
import pickle
import threading
from multiprocessing import reduction, spawn
from typing import Any, Callable, Dict, Generic, Optional, Tuple, TypeVar

import fastfnpickle
from fastfnpickle import _fork

__all__ = ["ByValue", "ProcessPoolExecutor", "by_value", "disable_multiprocessing",
           "enable_multiprocessing", "multiprocessing_enabled"]

R = TypeVar("R")

# Results of these types pickle the same with the stdlib; wrapping them would only copy bytes.
_PLAIN_RESULTS = frozenset({type(None), bool, int, float, complex, str, bytes})


# --------------------------------------------------------------------------------------------
# One callable

class ByValue(Generic[R]):
    """A callable whose pickle is fastfnpickle's pickle of the callable it wraps.

    Calling it calls the wrapped callable. Any pickler (the stdlib's too) pickles it as
    "load these fastfnpickle bytes", so a lambda, closure or ``__main__`` function wrapped in
    it can go wherever a picklable callable is required. It unpickles as a ``ByValue`` again,
    so it can be passed on further.
    """

    def __init__(self, fn: Callable[..., R]) -> None:
        if not callable(fn):
            raise TypeError(f"by_value() needs a callable, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self.__wrapped__(*args, **kwargs)

    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]:
        return (_load_by_value, (fastfnpickle.dumps(self.__wrapped__),))

    def __repr__(self) -> str:
        return f"by_value({self.__wrapped__!r})"


def by_value(fn: Callable[..., R]) -> ByValue[R]:
    """Wrap ``fn`` so that any pickler, the stdlib's included, can pickle it.

    >>> pool.map(by_value(lambda x: x * 2), range(10))        # doctest: +SKIP
    >>> DataLoader(ds, collate_fn=by_value(lambda b: b), ...)  # doctest: +SKIP

    Only the callable (with everything it references) is pickled by fastfnpickle; the other
    arguments of the call still go through the caller's pickler.
    """
    if type(fn) is ByValue:
        return fn
    return ByValue(fn)


def _load_by_value(data: bytes) -> ByValue[Any]:
    return ByValue(pickle.loads(data))


# --------------------------------------------------------------------------------------------
# The executor

class _Returned:
    """Carries a worker's result home; unpickles as the result itself."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]:
        return (pickle.loads, (fastfnpickle.dumps(self.value),))


class _Raised(Exception):
    """Carries an exception the stdlib cannot pickle; unpickles as that exception."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc

    def __str__(self) -> str:
        kind = type(self.exc)
        return f"{kind.__module__}.{kind.__qualname__}: {self.exc}"

    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]:
        return (pickle.loads, (fastfnpickle.dumps(self.exc),))


def _stdlib_picklable(obj: Any) -> bool:
    try:
        reduction.ForkingPickler.dumps(obj)
    except Exception:
        return False
    return True


class _Call:
    """``fn(*args, **kwargs)`` to run in a worker, pickled as one fastfnpickle pickle.

    One pickle for the whole call keeps objects shared between the function and its arguments
    shared after loading.
    """

    __slots__ = ("fn", "args", "kwargs")

    def __init__(self, fn: Callable[..., Any], args: Tuple[Any, ...],
                 kwargs: Dict[str, Any]) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __reduce__(self) -> Tuple[Any, Tuple[bytes]]:
        return (_load_call, (fastfnpickle.dumps((self.fn, self.args, self.kwargs)),))

    def __call__(self) -> Any:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            if _stdlib_picklable(exc):
                raise
            # The stdlib would replace an unpicklable exception by its own pickling error.
            raise _Raised(exc).with_traceback(exc.__traceback__) from None
        if type(result) in _PLAIN_RESULTS:
            return result
        return _Returned(result)


def _load_call(data: bytes) -> _Call:
    try:
        fn, args, kwargs = pickle.loads(data)
    except Exception as exc:
        # Raised here, the error would kill the worker and the caller would see only a bare
        # BrokenProcessPool: the task fails instead, with the load error as its cause.
        return _Call(_LoadFailure(exc), (), {})
    return _Call(fn, args, kwargs)


class _LoadFailure:
    """Stands for a task the worker could not unpickle; calling it raises why."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __call__(self) -> Any:
        exc = self.exc
        raise pickle.UnpicklingError(
            f"the worker could not load the task: {type(exc).__name__}: {exc}") from exc


class ProcessPoolExecutor(concurrent.futures.ProcessPoolExecutor):
    """:class:`concurrent.futures.ProcessPoolExecutor` that pickles with fastfnpickle.

    Same constructor and methods as the stdlib's. The function, its arguments, the
    ``initializer`` and its ``initargs`` travel to the workers through fastfnpickle, and results
    travel back through it, so lambdas, closures and ``__main__`` classes work under every start
    method (``spawn``, ``forkserver``, ``fork``). Exceptions raised in a worker come back as
    themselves; a worker that dies breaks the pool with
    :class:`concurrent.futures.process.BrokenProcessPool`, as in the stdlib.
    """

    def __init__(self, max_workers: Optional[int] = None, mp_context: Any = None,
                 initializer: Optional[Callable[..., Any]] = None, initargs: Tuple[Any, ...] = (),
                 **kwargs: Any) -> None:
        if initializer is not None:
            initializer = _Call(initializer, tuple(initargs), {})
            initargs = ()
        super().__init__(max_workers, mp_context, initializer, initargs, **kwargs)

    def submit(self, fn: Callable[..., R], /, *args: Any,
               **kwargs: Any) -> "concurrent.futures.Future[R]":
        """Schedule ``fn(*args, **kwargs)`` in a worker; return its Future."""
        return super().submit(_Call(fn, args, kwargs))
    # map() needs no override: the stdlib implements it with submit().


# --------------------------------------------------------------------------------------------
# Every multiprocessing pickler

# Key under which the spawn preparation data carries the switch to the child; spawn.prepare()
# ignores keys it does not know.
_PREP_KEY = "fastfnpickle"

_LOCK = threading.Lock()
_SAVED: Dict[str, Any] = {}


@_fork.in_child
def _after_fork_in_child() -> None:
    # Another thread may have held the lock at the fork (see _fork); the switch stays as
    # inherited ("fork children inherit the switch").
    global _LOCK
    _LOCK = threading.Lock()


def _mp_pickler_class() -> type:
    """fastfnpickle's Pickler with multiprocessing's dispatch table (its registered reducers)."""

    class MultiprocessingPickler(fastfnpickle.Pickler):
        def __init__(self, file: Any, protocol: Optional[int] = None) -> None:
            super().__init__(file, protocol)
            # Read per instance, as ForkingPickler does: reducers registered later still count.
            forking: Any = reduction.ForkingPickler  # private tables, not in the stubs
            table = forking._copyreg_dispatch_table.copy()
            table.update(forking._extra_reducers)
            self.dispatch_table = table

    return MultiprocessingPickler


def _switches(pickler: type, original_dumps: Any, original_prep: Any) -> Tuple[Any, Any, Any]:
    """The replacements for ``ForkingPickler.dumps``, ``reduction.dump`` and
    ``spawn.get_preparation_data``.

    They hold what they need, so a call racing with :func:`disable_multiprocessing` still
    completes.
    """

    def dumps(cls: type, obj: Any, protocol: Optional[int] = None) -> memoryview:
        if cls is not reduction.ForkingPickler:
            # A subclass of ForkingPickler chose its own behaviour; leave it alone.
            return original_dumps.__get__(None, cls)(obj, protocol)
        buf = io.BytesIO()
        pickler(buf, protocol).dump(obj)
        return buf.getbuffer()

    def dump(obj: Any, file: Any, protocol: Optional[int] = None) -> None:
        pickler(file, protocol).dump(obj)

    def get_preparation_data(name: str) -> Dict[str, Any]:
        data = original_prep(name)
        data[_PREP_KEY] = _ChildSwitch()
        return data

    return classmethod(dumps), dump, get_preparation_data


class _ChildSwitch:
    """Unpickles (in a spawned or forkserver child, before the process object) as
    :func:`enable_multiprocessing` having been called there."""

    def __reduce__(self) -> Tuple[Any, Tuple[()]]:
        return (_enable_in_child, ())


def _enable_in_child() -> bool:
    enable_multiprocessing()
    return True


def enable_multiprocessing() -> None:
    """Make ``multiprocessing`` pickle with fastfnpickle in this process and its children.

    Everything ``multiprocessing`` sends (process objects under ``spawn``/``forkserver``,
    ``Pool`` and ``concurrent.futures`` tasks and results, queues, pipes, managers, torch's
    DataLoader workers) goes through fastfnpickle: objects the stdlib pickles by name still are,
    and lambdas, closures, ``__main__`` functions and classes go by value. Reducers registered
    with ``ForkingPickler.register`` (torch's shared-memory tensors, ...) keep working.

    Processes started afterwards with ``spawn`` or ``forkserver`` switch themselves on before
    they run anything (they need fastfnpickle importable at startup: installed, or on
    ``PYTHONPATH``); ``fork`` children inherit the switch. Calling it again does nothing.
    """
    with _LOCK:
        if _SAVED:
            return
        forking = reduction.ForkingPickler
        _SAVED.update(dumps=forking.__dict__["dumps"], dump=reduction.dump,
                      prep=spawn.get_preparation_data)
        new_dumps, new_dump, new_prep = _switches(_mp_pickler_class(), _SAVED["dumps"],
                                                  _SAVED["prep"])
        # Patched in place (class attribute, module attributes): multiprocessing's modules hold
        # ForkingPickler itself and look dump/get_preparation_data up at call time.
        forking.dumps = new_dumps  # type: ignore[method-assign]
        reduction.dump = new_dump
        spawn.get_preparation_data = new_prep


def disable_multiprocessing() -> None:
    """Undo :func:`enable_multiprocessing` in this process (children already started keep it)."""
    with _LOCK:
        if not _SAVED:
            return
        reduction.ForkingPickler.dumps = _SAVED["dumps"]  # type: ignore[method-assign]
        reduction.dump = _SAVED["dump"]
        spawn.get_preparation_data = _SAVED["prep"]
        _SAVED.clear()


def multiprocessing_enabled() -> bool:
    """Whether :func:`enable_multiprocessing` is in effect in this process."""
    return bool(_SAVED)
