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
hash order. A pickle carries a snapshot of the entries each function reads instead (see
:func:`classdict_snapshot`).
"""

import sys
from types import FunctionType
from typing import Any, Dict, Tuple

HAS_ANNOTATE: bool = sys.version_info >= (3, 14)

CLASSDICT_CELL: str = "__classdict__"

def annotations_field(func: FunctionType) -> Any:
    """The state's ``annotations`` entry: ``__annotate__`` if set, else the dict, else None."""
    if HAS_ANNOTATE:
        annotate = func.__annotate__  # type: ignore[attr-defined]
        if annotate is not None:
            return annotate
    return func.__annotations__ or None


def classdict_snapshot(pickler: Any, namespace: Dict[str, Any],
                       names: Tuple[str, ...]) -> Dict[str, Any]:
    """The plain dict a ``__classdict__`` cell holds in a pickle: the entries of the class
    namespace that the function's code reads (``names``, the global names it reads, which
    include the class-scope lookups), values made stable like class attributes.

    Annotation code only reads this dict, so each function gets its own cell with its own
    entries: pickling a method's ``__annotate__`` must not drag in (and fail on) every other
    attribute of the class, such as ``_abc_impl`` or a lock.
    """
    snapshot: Dict[str, Any] = {}
    stable = pickler._stable
    get = namespace.get
    for name in names:
        value = get(name, _MISSING)
        if value is not _MISSING:
            snapshot[name] = stable(value)
    return snapshot


_MISSING = object()
