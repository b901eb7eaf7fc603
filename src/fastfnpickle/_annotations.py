"""Globals named only inside string annotations (``from __future__ import annotations``).

A function pickled by value carries only the globals its bytecode reads, so
``typing.get_type_hints()`` on the loaded function could not resolve names used only in its
annotations. Names that resolve, in the function's globals, to objects that pickle well
(classes, modules, typing constructs, anything importable by name) are captured as well;
others are left out silently: annotations never make a pickle fail.
"""

import ast
import sys
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

from . import _fork

_MISSING = object()
_TYPING_MODULES = frozenset({"typing", "typing_extensions", "types", "collections.abc"})

# Annotation string -> the names it reads; bounded, emptied when full.
_NAMES: Dict[str, Tuple[str, ...]] = {}
_NAMES_MAX = 4096


@_fork.in_child
def _after_fork_in_child() -> None:
    _NAMES.clear()  # a cache (see _fork)


def _names_in(text: str) -> Tuple[str, ...]:
    names = _NAMES.get(text)
    if names is None:
        found: List[str] = []
        try:
            tree = ast.parse(text, mode="eval")
        except Exception:  # not an expression, or too deeply nested to parse: nothing
            tree = None
        if tree is not None:
            for node in ast.walk(tree):
                if type(node) is ast.Name and node.id not in found:
                    found.append(node.id)
        names = tuple(found)
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[text] = names
    return names


def _found_by_name(value: Any) -> bool:
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if type(module_name) is not str or type(qualname) is not str or module_name == "__main__":
        return False
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if found is None:
            return False
        found = getattr(found, part, None)
    return found is value


def _pickles_well(value: Any) -> bool:
    if isinstance(value, (type, ModuleType)):
        return True
    try:
        if type(value).__module__ in _TYPING_MODULES:
            return True
        return _found_by_name(value)
    except Exception:  # a hostile __getattr__: leave it out
        return False


def annotation_globals(annotations: Any, gdict: Dict[str, Any],
                       taken: Any) -> Optional[List[Tuple[str, Any]]]:
    """``(name, value)`` of the globals that string values in ``annotations`` read, that
    ``gdict`` holds, that are not in ``taken`` already, and that pickle well; None if none."""
    found: Optional[List[Tuple[str, Any]]] = None
    for text in annotations.values():
        if type(text) is not str:
            continue
        for name in _names_in(text):
            if name in taken or (found is not None and any(n == name for n, _ in found)):
                continue
            value = gdict.get(name, _MISSING)
            if value is _MISSING or not _pickles_well(value):
                continue
            if found is None:
                found = []
            found.append((name, value))
    return found
