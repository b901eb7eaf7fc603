"""Constants of the pickle format that both twins must agree on."""

import sys
import zlib
from pickle import PicklingError, UnpicklingError
from typing import Dict, Tuple

# Tag every encoded code object carries: bytecode only loads on the minor version that made it.
CODE_TAG: str = "%d.%d" % sys.version_info[:2]
# The same, for code whose frozenset constants were stored as marked, sorted tuples.
CODE_TAG_SETS: str = CODE_TAG + "+sets"

# The wire vocabulary: every global a pickle names inside fastfnpickle is
# ``REBUILD_PATH.<name>`` for a name in RECONSTRUCTORS. Pickles outlive releases, so these
# names never change meaning; the readers of pickles (``explain``, the failure notes) take
# them from here rather than spelling them again. A new reconstructor is exported by
# ``_rebuild``, listed here, described in ``explain._KNOWN`` (and ``explain._SETTERS`` when
# it is a state setter) and pickled by some object of the tests;
# tests/test_wire_vocabulary.py fails until all of that is done.
REBUILD_PATH = "fastfnpickle._rebuild"
REBUILD_FUNCTION = "function"            # (tag, code, filename, globals, closure) -> function;
                                         # also (function, state) -> the function filled in
REBUILD_CODE = "code"                    # (tag, code bytes) -> a bare code object
REBUILD_MAKE_CELL = "make_cell"          # () -> an empty cell, filled by fill_cell
REBUILD_FILL_CELL = "fill_cell"          # (cell, (value,)) -> the cell
REBUILD_CLOSURE_CELL = "closure_cell"    # (function, index) -> a cell shared with it
REBUILD_IMPORT_MODULE = "import_module"  # (name,) -> a module by reference
REBUILD_MAKE_MODULE = "make_module"      # (name,) or (name, ModuleType subclass) -> an
                                         # empty dynamic module
REBUILD_SET_MODULE_STATE = "set_module_state"  # (module, dict) -> the module filled in
REBUILD_DICT_VIEW = "dict_view"          # (mapping, kind) -> keys/values/items view
REBUILD_MAKE_CLASS = "make_class"        # (metaclass, name, bases, skeleton, id) -> class;
                                         # also (class, (attrs, abc registry[, enum member
                                         # attributes])) -> the class filled in
REBUILD_MAKE_TYPEVAR = "make_typevar"    # (kind, name, bound, constraints, covariant,
                                         # contravariant, infer_variance, id[, module[,
                                         # default]]) -> TypeVar / ParamSpec / TypeVarTuple
REBUILD_MEMORY = "memory"                # (bytes, format, shape, readonly) -> memoryview
REBUILD_FILE_COPY = "file_copy"          # (content, position, name) -> StringIO / BytesIO
REBUILD_LRU_CACHE = "lru_cache"          # (function, maxsize, typed) -> an empty-cache wrapper
REBUILD_SINGLEDISPATCH = "singledispatch"  # (function) -> a singledispatch function
REBUILD_SINGLEDISPATCH_STATE = "singledispatch_state"  # (dispatcher, registry) -> filled in
REBUILD_NEW_TYPE = "new_type"            # (name, supertype, qualname, module) -> NewType
RECONSTRUCTORS = (
    REBUILD_FUNCTION, REBUILD_CODE, REBUILD_MAKE_CELL, REBUILD_FILL_CELL, REBUILD_CLOSURE_CELL,
    REBUILD_IMPORT_MODULE, REBUILD_MAKE_MODULE, REBUILD_SET_MODULE_STATE, REBUILD_DICT_VIEW,
    REBUILD_MAKE_CLASS, REBUILD_MAKE_TYPEVAR, REBUILD_MEMORY, REBUILD_FILE_COPY,
    REBUILD_LRU_CACHE, REBUILD_SINGLEDISPATCH, REBUILD_SINGLEDISPATCH_STATE, REBUILD_NEW_TYPE,
)

# The argument layouts each reconstructor accepts, by argument name (one tuple per form: several
# reconstructors are both a constructor and the state setter of what they made). A call with
# any other number of arguments is a corrupt pickle; the load-side error messages
# (``_corrupt``) name arguments from here.
SIGNATURES: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    REBUILD_FUNCTION: (("tag", "code", "filename", "globals", "closure"), ("function", "state")),
    REBUILD_CODE: (("tag", "code", "filename"),),
    REBUILD_MAKE_CELL: ((),),
    REBUILD_FILL_CELL: (("cell", "state"),),
    REBUILD_CLOSURE_CELL: (("function", "index"),),
    REBUILD_IMPORT_MODULE: (("name",),),
    REBUILD_MAKE_MODULE: (("name",), ("name", "kind")),
    REBUILD_SET_MODULE_STATE: (("module", "state"),),
    REBUILD_DICT_VIEW: (("mapping", "kind"),),
    REBUILD_MAKE_CLASS: (("metaclass", "name", "bases", "skeleton", "id"), ("class", "state")),
    # The module and the PEP 696 default (present only when the TypeVar has one) follow the id,
    # where older pickles end.
    REBUILD_MAKE_TYPEVAR: (("kind", "name", "bound", "constraints", "covariant",
                            "contravariant", "infer_variance", "id"),
                           ("kind", "name", "bound", "constraints", "covariant",
                            "contravariant", "infer_variance", "id", "module"),
                           ("kind", "name", "bound", "constraints", "covariant",
                            "contravariant", "infer_variance", "id", "module", "default")),
    REBUILD_MEMORY: (("data", "format", "shape", "readonly"),),
    REBUILD_FILE_COPY: (("content", "position", "name"),),
    REBUILD_LRU_CACHE: (("function", "maxsize", "typed"),),
    REBUILD_SINGLEDISPATCH: (("function",),),
    REBUILD_SINGLEDISPATCH_STATE: (("dispatcher", "state"),),
    REBUILD_NEW_TYPE: (("name", "supertype", "qualname", "module"),),
}

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
