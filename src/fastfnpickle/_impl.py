"""Pick the dump implementation once, at import.

``FASTFNPICKLE_NO_EXTENSIONS`` (1/true/yes/on) forces the pure-Python twin; otherwise the
compiled core is used when it imports, else the twin. The load twin is chosen by ``_rebuild``
with the same rule; ``IMPLEMENTATION`` reports what actually loaded, and says "cython" only
when both compiled halves did.
"""

from types import ModuleType
from typing import Tuple

from . import _rebuild
from ._env import env_flag


def _choose() -> Tuple[ModuleType, str]:
    if not env_flag("FASTFNPICKLE_NO_EXTENSIONS") and _rebuild.LOAD_IMPLEMENTATION == "cython":
        try:
            from . import _core
        except ImportError:
            pass
        else:
            return _core, "cython"
    from . import _core_py

    return _core_py, "python"


core: ModuleType
IMPLEMENTATION: str
core, IMPLEMENTATION = _choose()
