"""Constants of the pickle format that both twins must agree on."""

import sys

# Tag every encoded code object carries: bytecode only loads on the minor version that made it.
CODE_TAG: str = "%d.%d" % sys.version_info[:2]
# The same, for code whose frozenset constants were stored as marked, sorted tuples.
CODE_TAG_SETS: str = CODE_TAG + "+sets"

# Marks a frozenset constant that was stored as a sorted tuple to make the bytes deterministic.
FROZENSET_MARK: str = "\x00fastfnpickle.frozenset\x00"
