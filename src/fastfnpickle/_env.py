"""The one rule for reading boolean environment switches, shared by setup.py and the package."""

import os

_TRUE = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str) -> bool:
    """True only when the variable is set to 1/true/yes/on (any case, surrounding space ignored)."""
    return os.environ.get(name, "").strip().lower() in _TRUE
