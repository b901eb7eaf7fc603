"""Constants of the pickle format that both twins must agree on."""

import sys
import zlib
from pickle import PicklingError, UnpicklingError
from typing import Dict, NamedTuple, Tuple

# Tag every encoded code object carries: bytecode only loads on the minor version that made it.
CODE_TAG: str = "%d.%d" % sys.version_info[:2]
# The same, for code whose frozenset constants were stored as marked, sorted tuples.
CODE_TAG_SETS: str = CODE_TAG + "+sets"

# The wire vocabulary: every global a pickle names inside fastfnpickle is
# ``REBUILD_PATH.<name>`` for a reconstructor declared in RECORDS below. Pickles outlive
# releases, so these names and layouts never change meaning; the load twins' error messages
# (``_corrupt``), ``explain`` and the failure notes all read them from here. A new reconstructor
# is a Record here, an export of ``_rebuild``, and some object of the tests that pickles through
# it; tests/test_wire_vocabulary.py fails until all of that is done.
REBUILD_PATH = "fastfnpickle._rebuild"
REBUILD_FUNCTION = "function"
REBUILD_CODE = "code"
REBUILD_MAKE_CELL = "make_cell"
REBUILD_FILL_CELL = "fill_cell"
REBUILD_CLOSURE_CELL = "closure_cell"
REBUILD_IMPORT_MODULE = "import_module"
REBUILD_MAKE_MODULE = "make_module"
REBUILD_SET_MODULE_STATE = "set_module_state"
REBUILD_DICT_VIEW = "dict_view"
REBUILD_MAKE_CLASS = "make_class"
REBUILD_MAKE_TYPEVAR = "make_typevar"
REBUILD_MEMORY = "memory"
REBUILD_FILE_COPY = "file_copy"
REBUILD_LRU_CACHE = "lru_cache"
REBUILD_SINGLEDISPATCH = "singledispatch"
REBUILD_SINGLEDISPATCH_STATE = "singledispatch_state"
REBUILD_NEW_TYPE = "new_type"


class Record(NamedTuple):
    """One reconstructor of the wire format."""

    name: str
    #: What it gives, in the words ``explain`` prints.
    makes: str
    #: The argument layouts it accepts, by argument name. A call with any other number of
    #: arguments is a corrupt pickle.
    forms: Tuple[Tuple[str, ...], ...]
    #: Whether a two-argument form ``(obj, state)`` fills in an object made earlier in the
    #: same pickle (a state setter: pickle's 6-tuple reduce calls it after ``obj`` exists).
    fills: bool = False


_TYPEVAR_ARGS = ("kind", "name", "bound", "constraints", "covariant", "contravariant",
                 "infer_variance", "id")
RECORDS: Dict[str, Record] = {r.name: r for r in (
    # Makes a function, or (the state setter) fills one in: see STATE_FIELDS.
    Record(REBUILD_FUNCTION, "function",
           (("tag", "code", "filename", "globals", "closure"), ("function", "state")), True),
    # A bare code object (code of a function is carried by ``function`` itself).
    Record(REBUILD_CODE, "code", (("tag", "code", "filename"),)),
    # An empty cell, filled by fill_cell with ``(value,)``.
    Record(REBUILD_MAKE_CELL, "cell", ((),)),
    Record(REBUILD_FILL_CELL, "cell", (("cell", "state"),), True),
    # A cell shared with a function rebuilt earlier: ``function.__closure__[index]``.
    Record(REBUILD_CLOSURE_CELL, "cell", (("function", "index"),)),
    Record(REBUILD_IMPORT_MODULE, "module", (("name",),)),
    # An empty dynamic module (of a ModuleType subclass ``kind``), then its namespace.
    Record(REBUILD_MAKE_MODULE, "module", (("name",), ("name", "kind"))),
    Record(REBUILD_SET_MODULE_STATE, "module", (("module", "state"),), True),
    # ``mapping.keys()`` / ``values()`` / ``items()``.
    Record(REBUILD_DICT_VIEW, "dict view", (("mapping", "kind"),)),
    # A class skeleton found or made by its id; the setter's state is (attrs, abc registry[,
    # enum member attributes]).
    Record(REBUILD_MAKE_CLASS, "class",
           (("metaclass", "name", "bases", "skeleton", "id"), ("class", "state")), True),
    # The module and the PEP 696 default (present only when the TypeVar has one) follow the
    # id, where older pickles end.
    Record(REBUILD_MAKE_TYPEVAR, "TypeVar",
           (_TYPEVAR_ARGS, _TYPEVAR_ARGS + ("module",), _TYPEVAR_ARGS + ("module", "default"))),
    Record(REBUILD_MEMORY, "memoryview", (("data", "format", "shape", "readonly"),)),
    # A StringIO / BytesIO holding a copy of a file open for reading.
    Record(REBUILD_FILE_COPY, "file copy", (("content", "position", "name"),)),
    Record(REBUILD_LRU_CACHE, "lru_cache wrapper", (("function", "maxsize", "typed"),)),
    Record(REBUILD_SINGLEDISPATCH, "singledispatch function", (("function",),)),
    # The setter's state is (registrations, extra attributes).
    Record(REBUILD_SINGLEDISPATCH_STATE, "singledispatch function",
           (("dispatcher", "state"),), True),
    Record(REBUILD_NEW_TYPE, "NewType", (("name", "supertype", "qualname", "module"),)),
)}
RECONSTRUCTORS: Tuple[str, ...] = tuple(RECORDS)
SIGNATURES: Dict[str, Tuple[Tuple[str, ...], ...]] = {r.name: r.forms for r in RECORDS.values()}

# The function state: a tuple in this order, most often set first, trailing Nones dropped.
# A function with no state at all (a plain lambda) is reduced without one: no state-setter
# call on load (pickles that carry an empty state still load). ``doc`` is boxed as ``(doc,)``
# when it differs from the docstring a new function gets from its code object, else None;
# ``module`` likewise (``(module,)`` unless it is the globals' ``__name__``), so a
# ``__module__`` of None survives.
FIELD_CAPTURED = "captured"        # {global name: value} pickled with the function
FIELD_MODULES = "modules"          # {global name: module name} imported on load
FIELD_CELL_VALUES = "cell_values"  # the closure cells' contents, in __closure__ order
FIELD_DEFAULTS = "defaults"
FIELD_DOC = "doc"
FIELD_EMPTY_CELLS = "empty_cells"  # indexes of cells with no contents
FIELD_KWDEFAULTS = "kwdefaults"
FIELD_QUALNAME = "qualname"
FIELD_NAME = "name"
FIELD_MODULE = "module"
FIELD_ANNOTATIONS = "annotations"
FIELD_ATTRS = "attrs"              # the function's __dict__
FIELD_EXTRA = "extra"              # (type_params, submodule_names)
STATE_FIELDS = (FIELD_CAPTURED, FIELD_MODULES, FIELD_CELL_VALUES, FIELD_DEFAULTS, FIELD_DOC,
                FIELD_EMPTY_CELLS, FIELD_KWDEFAULTS, FIELD_QUALNAME, FIELD_NAME, FIELD_MODULE,
                FIELD_ANNOTATIONS, FIELD_ATTRS, FIELD_EXTRA)

# How deep constants (tuples, nested code objects) may nest in a code object a pickle holds.
# CPython's parser refuses more than 200 nested brackets and 100 indentation levels, so
# compiled code stays well inside this; deeper nesting is forged, and both load twins refuse it
# (walking it would otherwise meet Python's recursion limit in one twin and not the other).
MAX_CONST_DEPTH = 400

# Marks a frozenset constant that was stored as a sorted tuple to make the bytes deterministic.
FROZENSET_MARK: str = "\x00fastfnpickle.frozenset\x00"
# Marks a slice constant (3.14+ fold ``x[a:b]`` into one), stored as a tuple: marshal writes
# slices only from format 5 on, whose back-reference flags make the bytes nondeterministic.
# Code holding one is tagged CODE_TAG_SETS, like code holding frozensets.
SLICE_MARK: str = "\x00fastfnpickle.slice\x00"


class PicklingRecursionError(PicklingError, RecursionError):
    """Raised when an object is nested too deeply to pickle.

    A :class:`~pickle.PicklingError` as promised, and still the :class:`RecursionError` the
    stdlib raises, so code that catches either keeps working.
    """


# Encoded code objects carry a CRC-32 of their marshal bytes in front: marshal trusts its input,
# and a damaged code object can crash the interpreter, so damage must be caught before it.
# (A checksum catches accidents; deliberate tampering is what signed pickles are for.)
# The compiled twins compute the same CRC in C (tables from ``crc32_table``); the bytes are
# identical, so either loader checks what either pickler wrote.
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
