"""Constants of the pickle format that both twins must agree on."""

import sys
from pickle import PicklingError

# Tag every encoded code object carries: bytecode only loads on the minor version that made it.
CODE_TAG: str = "%d.%d" % sys.version_info[:2]
# The same, for code whose frozenset constants were stored as marked, sorted tuples.
CODE_TAG_SETS: str = CODE_TAG + "+sets"

# The function state: a tuple in this order, most often set first, trailing Nones dropped
# (a plain lambda's state is one item). ``doc`` is boxed as ``(doc,)`` when it differs from
# the docstring a new function gets from its code object, else None.
STATE_FIELDS = ("captured", "cell_values", "defaults", "doc", "empty_cells", "kwdefaults",
                "qualname", "name", "module", "annotations", "attrs", "extra")

# Marks a frozenset constant that was stored as a sorted tuple to make the bytes deterministic.
FROZENSET_MARK: str = "\x00fastfnpickle.frozenset\x00"


class PicklingRecursionError(PicklingError, RecursionError):
    """Raised when an object is nested too deeply to pickle.

    A :class:`~pickle.PicklingError` as promised, and still the :class:`RecursionError` the
    stdlib raises, so code that catches either keeps working.
    """
