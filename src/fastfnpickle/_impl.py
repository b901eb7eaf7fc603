"""Pick the implementation once, at import.

``FASTFNPICKLE_NO_EXTENSIONS`` (1/true/yes/on) forces the pure-Python twin; otherwise the
compiled core is used when it imports, else the twin. ``IMPLEMENTATION`` reports what
actually loaded, not what was asked for.
"""

from types import ModuleType

from ._env import env_flag

core: ModuleType
load: ModuleType
IMPLEMENTATION: str

if env_flag("FASTFNPICKLE_NO_EXTENSIONS"):
    from . import _core_py as core, _load_py as load

    IMPLEMENTATION = "python"
else:
    try:
        from . import _core as core, _load as load  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError:
        from . import _core_py as core, _load_py as load  # type: ignore[no-redef]

        IMPLEMENTATION = "python"
