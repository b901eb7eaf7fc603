"""Pickling files and standard streams (dump side).

``sys.stdout``, ``sys.stderr`` and ``sys.stdin`` (and their ``sys.__std*__`` originals) pickle by
reference: on load they are the loading process's own streams. Any other file open for reading
pickles by content: it loads as an in-memory copy (``io.StringIO`` for text, ``io.BytesIO`` for
binary files) holding the whole file, positioned where the file was, with its ``name``. Files
that are closed, write-only, terminals or not seekable raise :class:`pickle.PicklingError`.
"""

import io
import sys
from pickle import PicklingError
from typing import Any, Callable, Dict

from . import _rebuild

_STD_NAMES = ("stdout", "stderr", "stdin", "__stdout__", "__stderr__", "__stdin__")


def _describe(f: Any) -> str:
    name = getattr(f, "name", None)
    return f"file {name!r}" if name is not None else f"{type(f).__name__} object"


def reduce_file(pickler: Any, f: Any) -> tuple:
    """A standard stream by reference, any other readable file by content and position."""
    for std in _STD_NAMES:
        if getattr(sys, std, None) is f:
            return (getattr, (sys, std))
    what = _describe(f)
    if f.closed:
        raise PicklingError(f"cannot pickle {what}: it is closed")
    mode = getattr(f, "mode", None)
    if not f.readable():
        raise PicklingError(f"cannot pickle {what}: it is open for writing only"
                            + (f" (mode {mode!r})" if type(mode) is str else ""))
    if f.isatty():
        raise PicklingError(f"cannot pickle {what}: it is a terminal")
    if not f.seekable():
        raise PicklingError(f"cannot pickle {what}: it is not seekable (a pipe or socket), so "
                            "its content cannot be read without consuming it")
    position = f.tell()
    try:
        f.seek(0)
        content = f.read()
        if isinstance(f, io.TextIOBase):
            # A text file's tell() is an opaque cookie: count the characters before it.
            f.seek(position)
            offset = len(content) - len(f.read())
        else:
            offset = position
    finally:
        f.seek(position)
    if content is None:  # a non-blocking raw file with nothing ready
        raise PicklingError(f"cannot pickle {what}: it is non-blocking and its content could "
                            "not be read")
    name = getattr(f, "name", None)
    if type(name) is not str and type(name) is not bytes:
        name = None  # a file descriptor number means nothing in another process
    return (_rebuild.file_copy, (content, offset, name))


def reduce_std_stream(pickler: Any, f: Any) -> Any:
    """For other stream types standing in as ``sys.stdout`` etc. (a notebook's, a test
    runner's capture): the standard stream by reference; other objects of the type as the
    stdlib pickles them."""
    for std in _STD_NAMES:
        if getattr(sys, std, None) is f:
            return (getattr, (sys, std))
    return NotImplemented


DISPATCH: Dict[type, Callable[[Any, Any], Any]] = {
    t: reduce_file
    for t in (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom,
              io.FileIO)
}
# The types of the standard streams as this process started using fastfnpickle (Jupyter and
# pytest install their own before user code runs).
for _std in _STD_NAMES:
    _stream = getattr(sys, _std, None)
    if _stream is not None and type(_stream) not in DISPATCH:
        DISPATCH[type(_stream)] = reduce_std_stream
del _std, _stream
