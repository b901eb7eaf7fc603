"""Identifier strings on the load side: one object per name, as where the pickle was made."""

import sys
from typing import Any, Dict, List, Tuple


def intern_keys(d: Dict[Any, Any]) -> None:
    """Intern the str keys of ``d`` in place (same order, same values).

    Where an object was defined, the keys of its annotation and field dicts are identifiers,
    interned and shared with its attribute and parameter names, and a pickle of it writes each
    name once. Unpickled keys are fresh strings; interning them makes the loaded object share
    names the same way, so pickling it again here gives the producer's bytes.
    """
    if any(type(k) is str and k is not sys.intern(k) for k in d):
        items = [(sys.intern(k) if type(k) is str else k, v) for k, v in d.items()]
        d.clear()
        d.update(items)


def interned_names(value: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """``value`` with its str items interned, when all its items are str (a class's
    ``__match_args__``, names of fields); else ``value`` itself. See :func:`intern_keys`."""
    for item in value:
        if type(item) is not str:
            return value
    interned = tuple([sys.intern(item) for item in value])
    same = all(a is b for a, b in zip(interned, value, strict=True))
    return value if same else interned


def intern_items(items: List[Any]) -> None:
    """Intern, in place, the items of a freshly unpickled list whose items are all str (the
    field names a 3.14 dataclass's generated ``__annotate__`` keeps in a cell). See
    :func:`intern_keys`."""
    for item in items:
        if type(item) is not str:
            return
    for i, item in enumerate(items):
        items[i] = sys.intern(item)
