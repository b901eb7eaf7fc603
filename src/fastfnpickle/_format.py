"""Constants of the pickle format that both twins must agree on."""

import sys
import zlib
from pickle import PicklingError, UnpicklingError

# Tag every encoded code object carries: bytecode only loads on the minor version that made it.
CODE_TAG: str = "%d.%d" % sys.version_info[:2]
# The same, for code whose frozenset constants were stored as marked, sorted tuples.
CODE_TAG_SETS: str = CODE_TAG + "+sets"

# The function state: a tuple in this order, most often set first, trailing Nones dropped
# (a plain lambda's state is one item). ``doc`` is boxed as ``(doc,)`` when it differs from
# the docstring a new function gets from its code object, else None; ``module`` likewise
# (``(module,)`` unless it is the globals' ``__name__``), so a ``__module__`` of None survives.
STATE_FIELDS = ("captured", "modules", "cell_values", "defaults", "doc", "empty_cells",
                "kwdefaults", "qualname", "name", "module", "annotations", "attrs", "extra")
# ``modules`` maps global names to the module names they import on load; ``extra`` is
# ``(type_params, submodule_names)``.

# Marks a frozenset constant that was stored as a sorted tuple to make the bytes deterministic.
FROZENSET_MARK: str = "\x00fastfnpickle.frozenset\x00"


class PicklingRecursionError(PicklingError, RecursionError):
    """Raised when an object is nested too deeply to pickle.

    A :class:`~pickle.PicklingError` as promised, and still the :class:`RecursionError` the
    stdlib raises, so code that catches either keeps working.
    """


# Encoded code objects carry a CRC-32 of their marshal bytes in front: marshal trusts its input,
# and a damaged code object can crash the interpreter, so damage must be caught before it.
# (A checksum catches accidents; deliberate tampering is what signed pickles are for.)
def seal(code_bytes: bytes) -> bytes:
    """``code_bytes`` with its checksum in front."""
    return zlib.crc32(code_bytes).to_bytes(4, "little") + code_bytes


def crc32_table() -> list:
    """The 256-entry table of the CRC-32 ``seal`` uses (zlib's), for the compiled twins."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


def unseal(data: bytes) -> memoryview:
    """The marshal bytes of sealed ``data``; :class:`UnpicklingError` if they were damaged."""
    if type(data) is not bytes or len(data) < 5:
        raise UnpicklingError("corrupt code object in pickle: too short")
    body = memoryview(data)[4:]
    if zlib.crc32(body) != int.from_bytes(data[:4], "little"):
        raise UnpicklingError("corrupt code object in pickle: checksum mismatch (damaged bytes)")
    return body
