"""The serializers the benchmark compares, behind one ``dumps``/``loads`` shape.

Every target pickles with protocol 5. ``dumps(obj, buffer_callback)`` and
``loads(data, buffers)`` mirror the stdlib signatures; ``buffer_callback`` is None except for
out-of-band workloads.

``marshal-floor`` is not a serializer anyone should use: it is the least work any function
pickler must do (marshal the code, pickle the globals it names and its cell contents, name the
submodules the code may reach through a package it holds), with no bytecode analysis, no
caching and no by-reference handling. It applies to function workloads only.
"""

import builtins
import contextlib
import dataclasses
import importlib
import marshal
import pickle
import sys
from types import CellType, CodeType, FunctionType, ModuleType
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

TARGET_NAMES: Tuple[str, ...] = (
    "fastfnpickle-cython", "fastfnpickle-python", "pickle", "cloudpickle", "dill",
    "marshal-floor",
)
PROTOCOL = 5


@dataclasses.dataclass(frozen=True)
class Target:
    """One serializer under test."""

    name: str
    dumps: Callable[[Any, Any], bytes]
    loads: Callable[[bytes, Any], Any]
    version: str
    loader: str
    """How a fresh interpreter loads this target's pickles (see :func:`loads_for`)."""
    may_fail: bool = False
    """Failing to pickle a workload means "n/a" (the stdlib), not an error."""
    functions_only: bool = False
    note: str = ""
    loads_via: str = ""
    """How ``loads`` runs, in words: printed with the results."""
    load_binding: Optional[Callable[[], ContextManager[Any]]] = None
    """Entered around every ``loads`` of this target (outside the clock): makes the loads run
    on this target's own implementation, whichever is active in the process."""

    def loading(self) -> ContextManager[Any]:
        """The context in which this target's ``loads`` must run."""
        return self.load_binding() if self.load_binding is not None else contextlib.nullcontext()


def _pickler_dumps(core: Any) -> Callable[[Any, Any], bytes]:
    # fastfnpickle.dumps with the implementation pinned: the path users call.
    core_dumps = core.dumps

    def dumps(obj: Any, buffer_callback: Any = None) -> bytes:
        return core_dumps(obj, PROTOCOL, buffer_callback)
    return dumps


def _pickle_loads(data: bytes, buffers: Any = None) -> Any:
    return pickle.loads(data, buffers=buffers)


def _stdlib_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    return pickle.dumps(obj, PROTOCOL, buffer_callback=buffer_callback)


# --------------------------------------------------------------------------------------------
# Each fastfnpickle target loads with its own twin

# A pickle names its function reconstructors as ``fastfnpickle._rebuild.<name>``, which the
# package binds at import to one load twin (the compiled one when built). Timing the pure
# target's loads through that binding would time the compiled loader under the pure label, so
# each target rebinds those names to its own twin for its loads, and puts them back after.

def _twin_names() -> List[str]:
    """The names in ``_rebuild`` that are bound to a load twin's function of the same name."""
    from .. import _load_py, _rebuild

    twins: List[ModuleType] = [_load_py]
    try:
        from .. import _load
    except ImportError:
        pass
    else:
        twins.append(_load)
    # The reconstructors' own module (``_rebuild`` renames them to itself), not helpers such as
    # typing names that both modules happen to import.
    modules = {_rebuild.__name__} | {twin.__name__ for twin in twins}
    names = sorted(name for name, value in vars(_rebuild).items()
                   if not name.startswith("_") and callable(value)
                   and getattr(value, "__module__", None) in modules
                   and any(getattr(twin, name, None) is value for twin in twins))
    if not names:
        # A silent fallback would mislabel every loads column: refuse instead.
        raise RuntimeError("fastfnpickle._rebuild binds no load-twin function; the bench's "
                           "load binding must be updated to the new layout")
    return names


def load_twin_binding(twin: ModuleType) -> Callable[[], ContextManager[Any]]:
    """A context factory that binds ``twin``'s reconstructors under the ``_rebuild`` names."""
    from .. import _rebuild

    names = _twin_names()
    missing = [n for n in names if not callable(getattr(twin, n, None))]
    if missing:
        raise RuntimeError(f"{twin.__name__} lacks {', '.join(missing)}, which "
                           "fastfnpickle._rebuild binds")
    own = {n: getattr(twin, n) for n in names}

    @contextlib.contextmanager
    def binding() -> Iterator[None]:
        saved = {n: getattr(_rebuild, n) for n in names}
        for n, fn in own.items():
            setattr(_rebuild, n, fn)
        try:
            yield
        finally:
            for n, fn in saved.items():
                setattr(_rebuild, n, fn)
    return binding


def _bound_loads(binding: Callable[[], ContextManager[Any]]) -> Callable[[bytes, Any], Any]:
    # For the checks only: the timed loads enter the binding once per sample instead.
    def loads(data: bytes, buffers: Any = None) -> Any:
        with binding():
            return pickle.loads(data, buffers=buffers)
    return loads


_LOADS_VIA = ("pickle.loads, the function reconstructors (fastfnpickle._rebuild.{names}) "
              "bound to {twin} for its loads")


def _fastfnpickle_targets() -> Tuple[List[Target], Dict[str, str]]:
    from .. import _core_py, _load_py
    from .._version import __version__

    found: List[Target] = []
    missing: Dict[str, str] = {}
    names = "/".join(_twin_names())
    try:
        from .. import _core, _load
    except ImportError as exc:
        missing["fastfnpickle-cython"] = f"compiled core not built ({exc})"
    else:
        found.append(Target("fastfnpickle-cython", _pickler_dumps(_core), _pickle_loads,
                            __version__, "fastfnpickle-cython",
                            loads_via=_LOADS_VIA.format(names=names,
                                                        twin="the compiled fastfnpickle._load"),
                            load_binding=load_twin_binding(_load)))
    found.append(Target("fastfnpickle-python", _pickler_dumps(_core_py), _pickle_loads,
                        __version__, "fastfnpickle-python",
                        loads_via=_LOADS_VIA.format(names=names,
                                                    twin="the pure-Python fastfnpickle._load_py"),
                        load_binding=load_twin_binding(_load_py)))
    return found, missing


def _cloudpickle_target() -> Target:
    import cloudpickle

    def dumps(obj: Any, buffer_callback: Any = None) -> bytes:
        return cloudpickle.dumps(obj, PROTOCOL, buffer_callback=buffer_callback)

    return Target("cloudpickle", dumps, _pickle_loads, cloudpickle.__version__, "pickle",
                  loads_via="pickle.loads (cloudpickle's reconstructors)")


def _dill_target() -> Target:
    import dill

    # recurse=True: pickle only the globals a function reads, like the others do. Without it
    # dill pickles a by-value function's whole module namespace.
    def dumps(obj: Any, buffer_callback: Any = None) -> bytes:
        return dill.dumps(obj, PROTOCOL, recurse=True, buffer_callback=buffer_callback)

    def loads(data: bytes, buffers: Any = None) -> Any:
        return dill.loads(data, buffers=buffers)

    return Target("dill", dumps, loads, dill.__version__, "dill", note="recurse=True",
                  loads_via="dill.loads")


# --------------------------------------------------------------------------------------------
# The marshal floor

def _names(code: CodeType, out: set) -> None:
    out.update(code.co_names)
    for const in code.co_consts:
        if type(const) is CodeType:
            _names(const, out)


def _submodules(package: ModuleType, names: set, out: List[str]) -> None:
    # Submodules the code may reach as attributes of a package it holds (``xml.etree`` of
    # ``xml``): a loader must import them, or ``xml.etree`` fails in a fresh interpreter. The
    # cheapest correct rule: a name of the code that the package holds as a module.
    attrs = package.__dict__
    for name in attrs.keys() & names:  # in C: only the names the package has
        sub = attrs[name]
        if type(sub) is ModuleType and sub.__name__ not in out:
            out.append(sub.__name__)
            if "__path__" in sub.__dict__:  # a package (no exception raised for a module)
                _submodules(sub, names, out)


def _floor_parts(func: FunctionType, active: set) -> tuple:
    active.add(id(func))
    names: set = set()
    _names(func.__code__, names)
    g = func.__globals__
    values: Dict[str, Any] = {}
    modules: Dict[str, str] = {}
    functions: Dict[str, tuple] = {}
    submodules: List[str] = []
    for name in names:
        if name in g:
            value = g[name]
            t = type(value)
            if t is ModuleType:
                modules[name] = value.__name__
                if "__path__" in value.__dict__:
                    _submodules(value, names, submodules)
            elif t is FunctionType:
                if id(value) not in active:  # recursion: the floor just drops the reference
                    functions[name] = _floor_parts(value, active)
            else:
                values[name] = value
    closure = func.__closure__
    cells = None if closure is None else tuple([c.cell_contents for c in closure])
    active.discard(id(func))
    return (marshal.dumps(func.__code__), values, modules, functions, cells, func.__defaults__,
            submodules)


def floor_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    """The floor pickle of a function or a list of functions."""
    if type(obj) is FunctionType:
        payload: Any = (False, _floor_parts(obj, set()))
    elif type(obj) is list and all(type(f) is FunctionType for f in obj):
        payload = (True, [_floor_parts(f, set()) for f in obj])
    else:
        raise TypeError("the marshal floor only measures functions")
    return pickle.dumps(payload, PROTOCOL, buffer_callback=buffer_callback)


def _floor_function(parts: tuple) -> FunctionType:
    code, values, modules, functions, cells, defaults, submodules = parts
    for name in submodules:
        if name not in sys.modules:
            importlib.import_module(name)
    g: Dict[str, Any] = {"__builtins__": builtins}
    g.update(values)
    for name, module in modules.items():
        g[name] = sys.modules.get(module) or importlib.import_module(module)
    for name, sub in functions.items():
        g[name] = _floor_function(sub)
    closure = None if cells is None else tuple([CellType(v) for v in cells])
    return FunctionType(marshal.loads(code), g, None, defaults, closure)


def floor_loads(data: bytes, buffers: Any = None) -> Any:
    """Functions back from :func:`floor_dumps` bytes."""
    many, payload = pickle.loads(data, buffers=buffers)
    if many:
        return [_floor_function(p) for p in payload]
    return _floor_function(payload)


def _floor_target() -> Target:
    return Target("marshal-floor", floor_dumps, floor_loads, "", "floor", functions_only=True,
                  note="marshal.dumps(code) + pickle of the globals and cells it reads + the "
                       "submodules it may reach",
                  loads_via="pickle.loads of the parts, marshal.loads of each code object")


# --------------------------------------------------------------------------------------------

def resolve_targets(names: Optional[List[str]] = None) -> Tuple[List[Target], Dict[str, str]]:
    """The targets among ``names`` (default: all) that can run here, and why the others can't.

    Unknown names raise ValueError.
    """
    wanted = list(TARGET_NAMES if names is None else names)
    unknown = [n for n in wanted if n not in TARGET_NAMES]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(TARGET_NAMES)}")
    found, missing = _fastfnpickle_targets()
    found.append(Target("pickle", _stdlib_dumps, _pickle_loads,
                        f"protocol {PROTOCOL}", "pickle", may_fail=True,
                        loads_via="pickle.loads"))
    for name, make in (("cloudpickle", _cloudpickle_target), ("dill", _dill_target)):
        if name in wanted:
            try:
                found.append(make())
            except ImportError:
                missing[name] = f"not installed (pip install {name})"
    found.append(_floor_target())
    by_name = {t.name: t for t in found}
    return ([by_name[n] for n in TARGET_NAMES if n in wanted and n in by_name],
            {n: why for n, why in missing.items() if n in wanted})


def loads_for(loader: str) -> Callable[[bytes, Any], Any]:
    """The ``loads(data, buffers)`` a fresh interpreter uses for a target's ``loader``."""
    if loader == "pickle":
        return _pickle_loads
    if loader == "dill":
        return _dill_target().loads
    if loader == "floor":
        return floor_loads
    if loader == "fastfnpickle-cython":
        from .. import _load

        return _bound_loads(load_twin_binding(_load))
    if loader == "fastfnpickle-python":
        from .. import _load_py

        return _bound_loads(load_twin_binding(_load_py))
    raise ValueError(f"unknown loader {loader!r}")
