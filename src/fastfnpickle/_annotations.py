"""Deferred annotations (PEP 649/749, Python 3.14+) and class-namespace cells, for both twins.

On 3.14+ a function or class keeps the *function* that computes its annotations
(``__annotate__``) instead of a dict; reading ``__annotations__`` runs it, which raises
``NameError`` for a name defined after the function (a forward reference). So a function that
has an ``__annotate__`` carries that function (pickled like any other), and only one whose
``__annotations__`` were set by hand (which clears ``__annotate__``) carries the dict: both go
in the state's ``annotations`` field, told apart on load by type.

Annotation scopes inside a class body (the class's own ``__annotate__``, its methods'
``__annotate__``, lazy ``type`` aliases, PEP 695 scopes) read class-level names through a cell
named ``__classdict__`` that holds the class's real namespace dict: with ``_abc_impl``
(unpicklable), the ``__dict__``/``__weakref__`` descriptors and any set-valued attribute in
hash order. A pickle carries a snapshot of it instead (see :func:`classdict_snapshot`).
"""

import sys
from types import FunctionType, GetSetDescriptorType, MemberDescriptorType
from typing import Any, Dict

HAS_ANNOTATE: bool = sys.version_info >= (3, 14)

CLASSDICT_CELL: str = "__classdict__"

# Namespace entries that are per-process machinery or derived caches, not names an annotation
# can mean: the class rebuilt on load makes its own.
_CLASSDICT_SKIP = frozenset({
    "__dict__", "__weakref__", "_abc_impl", "__slotnames__", "__annotations_cache__",
    "__classdictcell__", "__classcell__",
})


def annotations_field(func: FunctionType) -> Any:
    """The state's ``annotations`` entry: ``__annotate__`` if set, else the dict, else None."""
    if HAS_ANNOTATE:
        annotate = func.__annotate__  # type: ignore[attr-defined]
        if annotate is not None:
            return annotate
    return func.__annotations__ or None


def classdict_snapshot(pickler: Any, namespace: Dict[str, Any]) -> Dict[str, Any]:
    """A plain dict standing for a class namespace held by a ``__classdict__`` cell.

    One per namespace per pickle (cells of several annotation scopes share it); values are
    made stable like the class's own attributes so the bytes do not depend on hash seeds.
    """
    tokens = pickler._tokens
    key = ("classdict", id(namespace))
    entry = tokens.get(key)
    if entry is not None:
        return entry[0]
    snapshot: Dict[str, Any] = {}
    stable = pickler._stable
    for name, value in namespace.copy().items():  # a copy: other threads may add to it
        if name in _CLASSDICT_SKIP:
            continue
        t = type(value)
        if t is MemberDescriptorType or t is GetSetDescriptorType:
            continue  # slot and __dict__ descriptors: made by the rebuilt class itself
        snapshot[name] = stable(value)
    tokens[key] = (snapshot, namespace)  # holding the namespace keeps its id unique
    return snapshot
