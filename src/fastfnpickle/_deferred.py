"""What Python 3.14 and 3.15 changed in what a function holds, shared by both twins.

Deferred annotations (PEP 649/749, 3.14+), class-namespace cells, explicit lazy imports
(PEP 810, 3.15) and ``frozendict`` globals (3.15).

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

import __future__

import pickle
import sys
import types
from types import FunctionType
from typing import Any, Dict, List, Optional, Tuple

HAS_ANNOTATE: bool = sys.version_info >= (3, 14)

CLASSDICT_CELL: str = "__classdict__"

# ``from __future__ import annotations``: 3.14 still makes an ``__annotate__``, which returns
# the annotations as strings; code compiled under the future import carries this flag.
_FUTURE_ANNOTATIONS: int = __future__.annotations.compiler_flag


def annotations_field(func: FunctionType) -> Any:
    """The state's ``annotations`` entry: ``__annotate__`` if set, else the dict, else None.

    Under ``from __future__ import annotations`` the dict of strings instead (computing it
    runs no user code and cannot fail), as on earlier Pythons: string annotations have
    their names resolved at pickling time (see ``_annotations``).
    """
    if HAS_ANNOTATE:
        annotate = func.__annotate__  # type: ignore[attr-defined]
        if annotate is not None:
            if type(annotate) is not FunctionType or \
                    not annotate.__code__.co_flags & _FUTURE_ANNOTATIONS:
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


# --------------------------------------------------------------------------------------------
# Explicit lazy imports (PEP 810, 3.15+). ``lazy import json`` at module level binds the
# global to a ``types.LazyImportType`` object; the first read of the global through the
# module's namespace (LOAD_GLOBAL, LOAD_NAME) imports the module and rebinds the global. A
# pickler reads globals with a plain dict lookup and so sees the lazy object, which the stdlib
# cannot pickle. Its only public surface is ``resolve()`` (imports, returns the value, leaves
# the global bound to the lazy object) and its repr, which names the import target.

LAZY_IMPORT_TYPE: Any = getattr(types, "LazyImportType", None)


def lazy_target(lazy: Any) -> str:
    """The dotted name a lazy import object refers to (``<lazy_import 'xml.dom.minidom'>``)."""
    text = repr(lazy)
    start = text.find("'")
    end = text.rfind("'")
    if start < 0 or end <= start:
        raise pickle.PicklingError(f"cannot read the target of lazy import {text}")
    return text[start + 1:end]


def plain_lazy_module(key: str, lazy: Any) -> Optional[str]:
    """For ``lazy import a.b.c`` (which binds ``a``), the dotted name ``a.b.c``; None for the
    other forms (``lazy from a import b``, ``lazy import a.b as c``), which need resolving.

    The plain form needs no import at pickling time: the global is the top-level package,
    imported on load like any module global, with the submodule imported beside it.
    """
    target = lazy_target(lazy)
    return target if target.partition(".")[0] == key else None


def resolve_lazy(lazy: Any) -> Any:
    """The value a lazy import stands for: the module if it is imported already, else what
    ``resolve()`` gives, which imports it in this process (the user's global stays lazy)."""
    module = sys.modules.get(lazy_target(lazy))
    return module if module is not None else lazy.resolve()


def with_submodules(found: Optional[tuple], extra: Optional[List[str]]) -> Optional[tuple]:
    """``found`` (submodules to import on load) plus those of plain lazy imports."""
    if extra is None:
        return found
    names = list(found or ())
    for name in extra:
        if name not in names:
            names.append(name)
    return tuple(names)


def plain_globals(namespace: Any) -> Dict[str, Any]:
    """A plain-dict copy of a function's globals that are not a dict: 3.15's ``exec()`` and
    ``eval()`` accept a ``frozendict``. The loaded function gets a dict, as for any other."""
    return dict(namespace)


# --------------------------------------------------------------------------------------------
# Private names (3.15+): the stdlib pickler finds ``C.__m`` (qualname) as ``C._C__m``, the
# name-mangled attribute, so private methods and nested classes pickle by reference.

MANGLES_PRIVATE_NAMES: bool = sys.version_info >= (3, 15)


def qualname_path(qualname: str) -> List[str]:
    """The attribute names that find ``qualname`` from its module, as this Python's pickle
    looks them up (private names mangled on 3.15+)."""
    parts = qualname.split(".")
    if not MANGLES_PRIVATE_NAMES or ".__" not in qualname:
        return parts
    prev = parts[0]
    for i in range(1, len(parts)):
        part = parts[i]
        if part.startswith("__") and not part.endswith("__"):
            owner = prev.lstrip("_")
            if owner:
                parts[i] = "_" + owner + part
        prev = part
    return parts
