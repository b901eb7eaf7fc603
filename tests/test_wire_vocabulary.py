"""One wire vocabulary: every global a pickle names inside fastfnpickle is a reconstructor
declared in ``_format.RECORDS``, exported by ``_rebuild`` under that name, and known to
``explain`` (which reads the declaration).

When you add a reconstructor: declare it in ``_format.RECORDS`` (what it makes, its argument
layouts, whether it is a state setter), export it from ``_rebuild``, and make sure some
object below (the parity corpus or ``EXTRA``) pickles through it.
"""

import collections
import io
import pickle
import pickletools
import types
import typing
from typing import Any, Dict, Iterator, List, NamedTuple, Set, Tuple

import _parity_corpus as C
import pytest
from conftest import Impl

from fastfnpickle import _format, _rebuild
from fastfnpickle._format import REBUILD_PATH, RECONSTRUCTORS, STATE_FIELDS
from fastfnpickle.explain import _KNOWN, _SETTERS, explain_bytes, render

_MARK = object()
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class _Global(NamedTuple):
    module: str
    name: str


class _Reduced(NamedTuple):
    func: Any


def opcode_events(data: bytes) -> Iterator[Tuple[str, str, str]]:
    """What the pickle names, read from its opcodes alone (nothing is loaded): ``("global",
    module, qualname)`` for every GLOBAL, STACK_GLOBAL and INST, and ``("setter", module,
    qualname)`` when a call's result is dropped at once, which is how pickle runs a state
    setter (``setter(obj, state)``, then POP). A small stack machine that tracks only strings,
    globals and calls."""
    stack: List[Any] = []
    memo: Dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        result: Any = None
        if name in ("GLOBAL", "INST"):
            module, _, qualname = arg.partition(" ")
            yield "global", module, qualname
            result = _Global(module, qualname) if name == "GLOBAL" else None
        elif name == "STACK_GLOBAL":
            result = _Global(stack[-2], stack[-1])
            yield ("global", *result)
        elif name == "REDUCE":
            result = _Reduced(stack[-2])
        elif name == "POP" and stack and isinstance(stack[-1], _Reduced) and \
                isinstance(stack[-1].func, _Global):
            yield ("setter", *stack[-1].func)
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
            continue
        if name in _PUTS:
            memo[arg] = stack[-1]
            continue
        if pickletools.markobject in op.stack_before:
            while stack.pop() is not _MARK:
                pass
        elif op.stack_before:
            del stack[-len(op.stack_before):]
        if name == "MARK":
            stack.append(_MARK)
        elif name in _GETS:
            stack.append(memo[arg])
        elif result is not None:
            stack.append(result)
        else:
            value = arg if isinstance(arg, str) else None
            stack.extend([value] * len(op.stack_after))


def named_globals(data: bytes) -> Iterator[Tuple[str, str]]:
    """(module, qualname) of every global the pickle names."""
    for event, module, qualname in opcode_events(data):
        if event == "global":
            yield module, qualname


class _WithSetter:
    def __reduce__(self) -> Any:
        return (_WithSetter, (), {"x": 1}, None, None, _set_state)


def _set_state(obj: Any, state: Any) -> Any:
    obj.__dict__.update(state)
    return obj


def test_opcode_events_read_both_opcodes_and_setters() -> None:
    # The reader the other tests rely on must see names written either way, memo included.
    obj = [collections.OrderedDict(), collections.OrderedDict, collections.Counter,
           _WithSetter(), _WithSetter()]
    for protocol in (0, 2, 4, 5):
        events = list(opcode_events(pickle.dumps(obj, protocol)))
        found = {(m, q) for e, m, q in events if e == "global"}
        assert ("collections", "OrderedDict") in found, (protocol, found)
        assert ("collections", "Counter") in found, (protocol, found)
        setters = [(m, q) for e, m, q in events if e == "setter"]
        assert setters == [(__name__, "_set_state")] * 2, (protocol, setters)


# --------------------------------------------------------------------------------------------
# The vocabulary itself

def exported() -> Set[str]:
    """Names ``_rebuild`` exports as reconstructors: public callables (functions or classes)
    that present themselves as ``fastfnpickle._rebuild.<name>``, which is what the pickler
    writes for them."""
    return {name for name, obj in vars(_rebuild).items()
            if not name.startswith("_") and callable(obj)
            and getattr(obj, "__module__", None) == REBUILD_PATH}


def test_rebuild_exports_exactly_the_reconstructors() -> None:
    assert len(set(RECONSTRUCTORS)) == len(RECONSTRUCTORS)
    assert exported() == set(RECONSTRUCTORS)
    for name in RECONSTRUCTORS:
        fn = getattr(_rebuild, name)
        # The C pickler writes obj.__module__ + obj.__qualname__ and looks it up again.
        assert (fn.__module__, fn.__qualname__) == (REBUILD_PATH, name)
    own = getattr(_rebuild, "OWN_FUNCTIONS", None)
    if own is not None:  # the set the hot path checks to pickle reconstructors by name
        assert set(RECONSTRUCTORS) <= {getattr(fn, "__qualname__", None) for fn in own}


def test_compiled_core_names_each_reconstructor_directly(impl: Impl) -> None:
    # The hot path answers a reconstructor with its name instead of the C pickler's slower
    # __reduce_ex__ route. The bytes are the same either way, so only this test sees a build
    # whose check of the reconstructors' type misses them (each Cython release names its own
    # function type, and a build can mix releases).
    if impl.name != "cython":
        pytest.skip("the twin leaves compiled reconstructors to the C pickler")
    pickler = impl.Pickler(io.BytesIO())
    for fn in _rebuild.OWN_FUNCTIONS:
        assert pickler.reducer_override(fn) == fn.__qualname__, fn


def test_rebuild_path_is_the_module() -> None:
    assert _rebuild.__name__ == REBUILD_PATH


def test_explain_knows_every_reconstructor() -> None:
    assert set(_KNOWN) == set(RECONSTRUCTORS)


def test_format_imports_nothing_from_the_package() -> None:
    # Both the dump and the load side import _format: it must stay a leaf.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(_format))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("fastfnpickle"), \
                ast.dump(node)
        elif isinstance(node, ast.Import):
            assert all(not a.name.startswith("fastfnpickle") for a in node.names)


def test_state_fields_are_named_once() -> None:
    fields = [v for k, v in vars(_format).items() if k.startswith("FIELD_")]
    assert sorted(fields) == sorted(STATE_FIELDS) and len(set(STATE_FIELDS)) == len(STATE_FIELDS)


# --------------------------------------------------------------------------------------------
# What pickles actually name

def _make_dynamic() -> Dict[str, Any]:
    g: Dict[str, Any] = {"__name__": "wire_vocabulary_dynamic"}
    exec(
        "import typing\n"
        "T = typing.TypeVar('T', bound=int)\n"
        "def f(x: T) -> T:\n    return x\n"
        "def cell_owner():\n"
        "    value = 1\n"
        "    def get():\n        return value\n"
        "    return get\n"
        "import functools\n"
        "@functools.lru_cache(maxsize=8)\n"
        "def cached(x):\n    return x * 2\n"
        "@functools.singledispatch\n"
        "def show(x):\n    return 'any'\n"
        "@show.register\n"
        "def _(x: int):\n    return 'int'\n"
        "UserId = typing.NewType('UserId', int)\n",
        g,
    )
    return g


def extra_objects() -> Dict[str, Any]:
    """Objects for reconstructors the parity corpus may not reach on its own."""
    g = _make_dynamic()
    get = g["cell_owner"]()
    cell = get.__closure__[0]
    dynamic_module = types.ModuleType("wire_vocabulary_module")
    exec("X = 1\ndef f():\n    return X\n", dynamic_module.__dict__)
    data = {"a": 1}
    return {
        "bare_code": get.__code__,
        "cell_alone": cell,
        "cell_shared": (get, cell),
        "typevar": g["T"],
        "typevar_function": g["f"],
        "dict_views": (data.keys(), data.values(), data.items()),
        "dynamic_module": dynamic_module,
        "imported_module": typing,
        "memoryview": memoryview(b"abcdef")[1:4],
        "file_copy": _readable_file(),
        "lru_cache": g["cached"],
        "singledispatch": g["show"],
        "new_type": g["UserId"],
    }


def _readable_file() -> Any:
    import tempfile

    f = tempfile.TemporaryFile("w+")
    f.write("line one\nline two\n")
    f.seek(5)
    return f


def all_objects() -> Dict[str, Any]:
    objects = {f"corpus:{k}": v for k, v in C.build_corpus().items()}
    objects.update({f"extra:{k}": v for k, v in extra_objects().items()})
    return objects


def pickles(impl: Impl) -> Iterator[Tuple[str, int, bytes]]:
    for name, obj in sorted(all_objects().items()):
        for protocol in (2, 5):  # STACK_GLOBAL from 4 on, GLOBAL below
            if protocol < C.MIN_PROTOCOL.get(name.partition(":")[2], 0):
                continue
            yield name, protocol, impl.dumps(obj, protocol)


def test_every_name_a_pickle_uses_is_registered_and_known(impl: Impl) -> None:
    seen: Set[str] = set()
    problems: List[str] = []
    for name, protocol, data in pickles(impl):
        for event, module, qualname in opcode_events(data):
            if event == "setter" and module == REBUILD_PATH and qualname not in _SETTERS:
                # explain would show the object unfilled and its state as a stray call
                problems.append(f"{name} (protocol {protocol}) uses {qualname} as a state "
                                "setter: declare it with fills=True in _format.RECORDS")
        ours = [(m, q) for m, q in named_globals(data)
                if m == "fastfnpickle" or m.startswith("fastfnpickle.")]
        for module, qualname in ours:
            where = f"{name} (protocol {protocol}) names {module}.{qualname}"
            if module != REBUILD_PATH:
                problems.append(f"{where}: reconstructors live at {REBUILD_PATH} only")
            elif qualname not in RECONSTRUCTORS:
                problems.append(f"{where}: not in _format.RECONSTRUCTORS")
            seen.add(qualname)
        result = explain_bytes(data, source=name)
        if result.unknown:
            problems.append(f"{name} (protocol {protocol}): explain does not know "
                            f"{result.unknown}")
        unknown_nodes = [n.path for n in result.tree.walk() if n.kind == "unknown"]
        if unknown_nodes:
            problems.append(f"{name} (protocol {protocol}): explain shows unknown {unknown_nodes}")
    assert not problems, "\n".join(problems)
    # Every reconstructor is exercised, so explain is checked on each.
    assert seen == set(RECONSTRUCTORS), (
        f"no object here pickles through {sorted(set(RECONSTRUCTORS) - seen)}: add one to "
        "the parity corpus or to extra_objects()")


# --------------------------------------------------------------------------------------------
# The test above must be able to fail: an unknown reconstructor is reported, not guessed at

def _unknown_pickle(protocol: int) -> bytes:
    """A pickle calling ``fastfnpickle._rebuild.make_gizmo(1)`` inside a list, never loaded."""
    class Gizmo:
        def __reduce__(self) -> Any:
            return (_gizmo, (1,))

    def _gizmo(x: int) -> int:
        return x

    _gizmo.__module__ = REBUILD_PATH
    _gizmo.__qualname__ = "make_gizmo"
    _rebuild.make_gizmo = _gizmo  # type: ignore[attr-defined]
    try:
        return pickle.dumps([Gizmo(), "tail"], protocol)
    finally:
        del _rebuild.make_gizmo  # type: ignore[attr-defined]


@pytest.mark.parametrize("protocol", [2, 5])
def test_explain_reports_an_unknown_reconstructor(protocol: int) -> None:
    data = _unknown_pickle(protocol)
    assert (REBUILD_PATH, "make_gizmo") in set(named_globals(data))
    result = explain_bytes(data)
    assert result.unknown == [f"{REBUILD_PATH}.make_gizmo"]
    node = result.tree.find("obj[0]")
    assert node is not None and node.kind == "unknown"
    assert node.type == f"unknown reconstructor {REBUILD_PATH}.make_gizmo"
    text = render(result)
    assert f"unknown reconstructors (a newer fastfnpickle made this pickle?): " \
           f"{REBUILD_PATH}.make_gizmo" in text
    assert result.to_dict()["unknown_reconstructors"] == [f"{REBUILD_PATH}.make_gizmo"]
    # Not a reference the load would import like a user's global.
    assert f"{REBUILD_PATH}.make_gizmo" not in result.references
