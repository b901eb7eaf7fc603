"""The errors the reconstructors raise for arguments no pickler of ours writes.

Both load twins build their messages here, so a corrupt or forged pickle gets the same
:class:`pickle.UnpicklingError`, word for word, whichever twin loads it. Only the error path
comes here: the checks themselves stay inline in each reconstructor (they run for every
function a pickle holds).

A message names the reconstructor by the global the pickle called, the argument (or the field
of a state tuple) and what was wrong with it, and never calls a method of the offending value
(its ``repr`` could be the next thing a forged pickle abuses).
"""

import re
from pickle import UnpicklingError
from typing import Any

from ._format import CODE_TAG, REBUILD_PATH, SIGNATURES

_TAG = re.compile(r"([0-9]{1,2}\.[0-9]{1,3})(\+sets)?")

_QUALNAME: Any = type.__dict__["__qualname__"]
_SIZED = (tuple, list, dict, set, frozenset, str, bytes, bytearray)


def describe(value: Any) -> str:
    """What ``value`` is, told from its type alone (and a length or small number)."""
    t = type(value)
    if value is None:
        return "None"
    if t is bool:
        return repr(value)
    if t is int:
        return f"int {value}" if -(10 ** 6) < value < 10 ** 6 else "a huge int"
    if t in _SIZED:
        return f"{t.__name__} of length {len(value)}"
    if issubclass(t, type):  # read through type's own descriptor: no metaclass code runs
        return f"the class {_QUALNAME.__get__(value)}"
    return f"an object of type {t.__qualname__}"


def corrupt(reconstructor: str, argument: str, expected: str, got: Any) -> UnpicklingError:
    """``argument`` of ``reconstructor`` should have been ``expected`` and is ``got``."""
    return UnpicklingError(
        f"corrupt pickle: {REBUILD_PATH}.{reconstructor}: {argument} must be {expected}, "
        f"not {describe(got)}")


def invalid(reconstructor: str, argument: str, problem: str) -> UnpicklingError:
    """``argument`` of ``reconstructor`` has the right type but ``problem``."""
    return UnpicklingError(
        f"corrupt pickle: {REBUILD_PATH}.{reconstructor}: {argument} {problem}")


def arity(reconstructor: str, given: int) -> UnpicklingError:
    """``reconstructor`` was called with ``given`` arguments, a number none of its forms takes."""
    forms = " or ".join("(" + ", ".join(form) + ")" for form in SIGNATURES[reconstructor])
    return UnpicklingError(
        f"corrupt pickle: {REBUILD_PATH}.{reconstructor} takes {forms}; the pickle gave "
        f"{given} argument{'' if given == 1 else 's'}")


def unpack(reconstructor: str, args: tuple) -> tuple:
    """``args`` of a reconstructor taking ``*args``, if one of its forms has that many."""
    n = len(args)
    for form in SIGNATURES[reconstructor]:
        if len(form) == n:
            return args
    raise arity(reconstructor, n)


def foreign_tag(reconstructor: str, tag: str) -> UnpicklingError:
    """Code tagged ``tag``, which is not this interpreter's: made by another minor version, or
    not a tag at all."""
    match = _TAG.fullmatch(tag)
    if match is None:
        return invalid(reconstructor, "tag", f"({describe(tag)}) is not a Python version tag")
    return UnpicklingError(
        f"this pickle holds a function compiled by Python {match.group(1)}; this interpreter "
        f"is Python {CODE_TAG}, and bytecode only loads on the minor version that made it")
