"""Load-side reconstructors for standard-library objects the stdlib pickle refuses: memoryviews,
copies of files open for reading, ``functools`` cache and dispatch wrappers, ``typing.NewType``.

Pickles name these as ``fastfnpickle._rebuild.<name>``; this module is load-side only (it never
imports the pickling half of the package).
"""

import functools
import io
import sys
import typing
from typing import Any, Union, cast

from ._corrupt import corrupt, describe, invalid, unpack
from ._format import (
    REBUILD_FILE_COPY,
    REBUILD_LRU_CACHE,
    REBUILD_MEMORY,
    REBUILD_NEW_TYPE,
    REBUILD_SINGLEDISPATCH,
    REBUILD_SINGLEDISPATCH_STATE,
)


def memory(*args: Any) -> memoryview:
    """``memory(data, format, shape, readonly)``: a memoryview over a copy of the bytes of the
    pickled one, same format and shape; writable views are rebuilt over a ``bytearray``."""
    data, fmt, shape, readonly = unpack(REBUILD_MEMORY, args)
    if type(data) is not bytes:
        raise corrupt(REBUILD_MEMORY, "data", "bytes", data)
    if type(fmt) is not str:
        raise corrupt(REBUILD_MEMORY, "format", "a str", fmt)
    if type(shape) is not tuple:
        raise corrupt(REBUILD_MEMORY, "shape", "a tuple of sizes", shape)
    for size in shape:
        if type(size) is not int or size < 0:
            raise corrupt(REBUILD_MEMORY, "shape", "a tuple of sizes", size)
    if type(readonly) is not bool:
        raise corrupt(REBUILD_MEMORY, "readonly", "a bool", readonly)
    view = memoryview(data if readonly else bytearray(data))
    if fmt == "B" and shape == (len(data),):
        return view
    try:
        # The format is data here, not a literal the type checker could follow.
        return cast(Any, view).cast(fmt, shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise invalid(REBUILD_MEMORY, "shape", f"and format do not fit the data: {exc}") from None


def file_copy(*args: Any) -> Union[io.StringIO, io.BytesIO]:
    """``file_copy(content, position, name)``: an in-memory copy of a file open for reading:
    its whole content, positioned where the pickled file was, with the file's ``name``."""
    content, position, name = unpack(REBUILD_FILE_COPY, args)
    if type(content) is not str and type(content) is not bytes:
        raise corrupt(REBUILD_FILE_COPY, "content", "a str or bytes", content)
    if type(position) is not int:
        raise corrupt(REBUILD_FILE_COPY, "position", "an int", position)
    if not 0 <= position <= len(content):
        raise invalid(REBUILD_FILE_COPY, "position",
                      f"({describe(position)}) is outside the content ({len(content)} long)")
    if name is not None and type(name) is not str and type(name) is not bytes:
        raise corrupt(REBUILD_FILE_COPY, "name", "a str, bytes or None", name)
    f: Any = io.StringIO(content) if type(content) is str else io.BytesIO(cast(bytes, content))
    f.seek(position)
    if name is not None:
        f.name = name
    return cast(Union[io.StringIO, io.BytesIO], f)


def lru_cache(*args: Any) -> Any:
    """``lru_cache(function, maxsize, typed)``: ``functools.lru_cache(maxsize, typed)(function)``,
    the same cache settings and an empty cache."""
    func, maxsize, typed = unpack(REBUILD_LRU_CACHE, args)
    if not callable(func):
        raise corrupt(REBUILD_LRU_CACHE, "function", "callable", func)
    if maxsize is not None and type(maxsize) is not int:
        raise corrupt(REBUILD_LRU_CACHE, "maxsize", "an int or None", maxsize)
    if maxsize is not None and not 0 <= maxsize <= sys.maxsize:
        # What cache_parameters() reports is never outside these (a negative size reads 0).
        raise invalid(REBUILD_LRU_CACHE, "maxsize", f"({describe(maxsize)}) is out of range")
    if type(typed) is not bool:
        raise corrupt(REBUILD_LRU_CACHE, "typed", "a bool", typed)
    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


def singledispatch(*args: Any) -> Any:
    """``singledispatch(function)``: ``functools.singledispatch(function)``;
    :func:`singledispatch_state` registers the rest."""
    (func,) = unpack(REBUILD_SINGLEDISPATCH, args)
    if not callable(func):
        raise corrupt(REBUILD_SINGLEDISPATCH, "function", "callable", func)
    return functools.singledispatch(func)


def singledispatch_state(*args: Any) -> Any:
    """``singledispatch_state(dispatcher, (registry, attrs))``: register the implementations
    (in their original order) and restore extra attributes. The dispatch cache starts empty."""
    wrapper, state = unpack(REBUILD_SINGLEDISPATCH_STATE, args)
    if not callable(getattr(wrapper, "register", None)) or not hasattr(wrapper, "registry"):
        raise corrupt(REBUILD_SINGLEDISPATCH_STATE, "dispatcher", "a singledispatch function",
                      wrapper)
    if type(state) is not tuple or len(state) != 2:
        raise corrupt(REBUILD_SINGLEDISPATCH_STATE, "state", "a 2-tuple", state)
    registry, attrs = state
    if type(registry) is not tuple:
        raise corrupt(REBUILD_SINGLEDISPATCH_STATE, "state", "a tuple of registrations",
                      registry)
    for item in registry:
        if type(item) is not tuple or len(item) != 2 or not isinstance(item[0], type) \
                or not callable(item[1]):
            raise corrupt(REBUILD_SINGLEDISPATCH_STATE, "state",
                          "(class, implementation) pairs", item)
    if attrs is not None and type(attrs) is not dict:
        raise corrupt(REBUILD_SINGLEDISPATCH_STATE, "state", "attributes in a dict", attrs)
    for cls, impl in registry:
        wrapper.register(cls, impl)
    if attrs:
        wrapper.__dict__.update(attrs)
    return wrapper


def new_type(*args: Any) -> Any:
    """``new_type(name, supertype, qualname, module)``: ``typing.NewType(name, supertype)``
    with its ``__qualname__`` and ``__module__`` kept."""
    name, supertype, qualname, module = unpack(REBUILD_NEW_TYPE, args)
    if type(name) is not str:
        raise corrupt(REBUILD_NEW_TYPE, "name", "a str", name)
    if type(qualname) is not str:
        raise corrupt(REBUILD_NEW_TYPE, "qualname", "a str", qualname)
    if module is not None and type(module) is not str:
        raise corrupt(REBUILD_NEW_TYPE, "module", "a str or None", module)
    make: Any = typing.NewType  # the name is data here, not the literal a checker expects
    new = make(name, supertype)
    new.__qualname__ = qualname
    new.__module__ = module
    return new
