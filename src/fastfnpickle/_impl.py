"""Pick the dump implementation once, at import.

``FASTFNPICKLE_NO_EXTENSIONS`` (1/true/yes/on) forces the pure-Python twin; otherwise the
compiled core is used when it imports, else the twin. The load twin is chosen by ``_rebuild``
with the same rule; ``IMPLEMENTATION`` reports what actually loaded, and says "cython" only
when both compiled halves did.
"""

from types import ModuleType

from . import _rebuild
from ._env import env_flag

core: ModuleType
IMPLEMENTATION: str

if env_flag("FASTFNPICKLE_NO_EXTENSIONS") or _rebuild.LOAD_IMPLEMENTATION == "python":
    from . import _core_py as core

    IMPLEMENTATION = "python"
else:
    try:
        from . import _core as core  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError:
        from . import _core_py as core  # type: ignore[no-redef]

        IMPLEMENTATION = "python"
