"""Load-side reconstructors for standard-library objects the stdlib pickle refuses: memoryviews,
copies of files open for reading, ``functools`` cache and dispatch wrappers, ``typing.NewType``.

Pickles name these as ``fastfnpickle._rebuild.<name>``; this module is load-side only (it never
imports the pickling half of the package).
"""

import functools
import io
import typing
from pickle import UnpicklingError
from typing import Any, Callable, Dict, Optional, Tuple, Union, cast


def memory(data: bytes, fmt: str, shape: Tuple[int, ...], readonly: bool) -> memoryview:
    """A memoryview over a copy of the bytes of the pickled one, same format and shape;
    writable views are rebuilt over a ``bytearray``."""
    if type(data) is not bytes or type(fmt) is not str or type(shape) is not tuple:
        raise UnpicklingError("corrupt memoryview in pickle")
    view = memoryview(data if readonly else bytearray(data))
    if fmt != "B" or len(shape) != 1:
        try:
            # The format is data here, not a literal the type checker could follow.
            view = cast(Any, view).cast(fmt, shape)
        except (TypeError, ValueError) as exc:
            raise UnpicklingError(f"corrupt memoryview in pickle: {exc}") from None
    return view


def file_copy(content: Union[str, bytes], position: int, name: Any) -> Union[io.StringIO,
                                                                               io.BytesIO]:
    """An in-memory copy of a file open for reading: its whole content, positioned where the
    pickled file was, with the file's ``name``."""
    if type(position) is not int or position < 0:
        raise UnpicklingError("corrupt file copy in pickle: bad position")
    if type(content) is str:
        f: Any = io.StringIO(content)
    elif type(content) is bytes:
        f = io.BytesIO(content)
    else:
        raise UnpicklingError("corrupt file copy in pickle: content is neither str nor bytes")
    f.seek(position)
    if name is not None:
        f.name = name
    return f


def lru_cache(func: Callable[..., Any], maxsize: Optional[int], typed: bool) -> Any:
    """``functools.lru_cache(maxsize, typed)(func)``: the same cache settings, an empty cache."""
    if not callable(func):
        raise UnpicklingError("corrupt lru_cache wrapper in pickle: the wrapped object is not "
                              "callable")
    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


def singledispatch(func: Callable[..., Any]) -> Any:
    """``functools.singledispatch(func)``; :func:`singledispatch_state` registers the rest."""
    if not callable(func):
        raise UnpicklingError("corrupt singledispatch function in pickle")
    return functools.singledispatch(func)


def singledispatch_state(wrapper: Any, state: Tuple[Any, Optional[Dict[str, Any]]]) -> Any:
    """Register the implementations (in their original order) and restore extra attributes.
    The dispatch cache starts empty."""
    registry, attrs = state
    for cls, impl in registry:
        wrapper.register(cls, impl)
    if attrs:
        wrapper.__dict__.update(attrs)
    return wrapper


def new_type(name: str, supertype: Any, qualname: str, module: Any) -> Any:
    """``typing.NewType(name, supertype)`` with its ``__qualname__`` and ``__module__`` kept."""
    if type(name) is not str or type(qualname) is not str:
        raise UnpicklingError("corrupt NewType in pickle")
    make: Any = typing.NewType  # the name is data here, not the literal a checker expects
    new = make(name, supertype)
    new.__qualname__ = qualname
    new.__module__ = module
    return new

