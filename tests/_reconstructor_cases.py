"""Every reconstructor a pickle can call, with every argument replaced by values no pickler of
ours writes: run as a script in a fresh interpreter (``python _reconstructor_cases.py cython``
or ``python``), it calls that twin's reconstructors and prints one JSON outcome per case.

Run in a child because the point is to find inputs that crash the interpreter; the parent
(tests/test_reconstructor_args.py) compares the two twins' outcomes.
"""

import functools
import io
import json
import re
import sys
import typing
from types import CellType, FunctionType, ModuleType
from typing import Any, Callable, Dict, List, Tuple

from fastfnpickle import _core_py, _format, _rebuild

# Values no pickler of ours writes in these places: wrong types, empty and oversized
# containers, negative and huge numbers.
BAD: Tuple[Tuple[str, Callable[[], Any]], ...] = (
    ("None", lambda: None),
    ("zero", lambda: 0),
    ("minus-one", lambda: -1),
    ("huge", lambda: 2 ** 64),
    ("minus-huge", lambda: -(2 ** 64)),
    ("float", lambda: 1.5),
    ("true", lambda: True),
    ("empty-str", lambda: ""),
    ("str", lambda: "abcdef"),
    ("dotted-str", lambda: ".x"),
    ("empty-bytes", lambda: b""),
    ("bytes", lambda: b"\x00" * 64),
    ("empty-tuple", lambda: ()),
    ("one-tuple", lambda: (None,)),
    ("big-tuple", lambda: (None,) * 40),
    ("empty-list", lambda: []),
    ("big-list", lambda: [0] * 1000),
    ("empty-dict", lambda: {}),
    ("dict", lambda: {"a": 1, 2: "b"}),
    ("object", lambda: object()),
    ("cell", lambda: CellType(1)),
    ("class", lambda: int),
    ("function", lambda: _closure()),
    ("module", lambda: ModuleType("m")),
)


def _closure() -> FunctionType:
    """A fresh function with one closure cell."""
    k = 1

    def inner(x: Any) -> Any:
        return x + k
    return inner


def _recorded_function_args() -> tuple:
    """The constructor arguments a real pickle gives ``function`` for ``_closure()``."""
    seen: List[tuple] = []

    class Recorder(_core_py.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            rv = super().reducer_override(obj)
            if type(obj) is FunctionType and type(rv) is tuple:
                seen.append(rv)
            return rv

    Recorder(io.BytesIO()).dump(_closure())
    tag, data, filename, _globals, closure = seen[0][1]
    return tag, data, filename, closure


TAG, DATA, FILENAME, NCELLS = _recorded_function_args()


def _full_state() -> tuple:
    """A function state with every field set to a value of the right type."""
    return ({"g": 1}, {"m": "math"}, (5,), (1,), ("doc",), (), {"kw": 1}, "q", "n", ("mod",),
            {"x": int}, {"attr": 1}, (None, ("json",)))


def _singledispatch() -> Any:
    return functools.singledispatch(lambda x: x)


# reconstructor name -> list of forms; each form builds fresh valid arguments.
FORMS: Dict[str, List[Callable[[], tuple]]] = {
    _format.REBUILD_FUNCTION: [lambda: (TAG, DATA, FILENAME, {}, NCELLS),
                               lambda: (_closure(), _full_state())],
    _format.REBUILD_CODE: [lambda: (TAG, DATA, FILENAME)],
    _format.REBUILD_MAKE_CELL: [lambda: ()],
    _format.REBUILD_FILL_CELL: [lambda: (CellType(), (1,))],
    _format.REBUILD_CLOSURE_CELL: [lambda: (_closure(), 0)],
    _format.REBUILD_IMPORT_MODULE: [lambda: ("math",)],
    _format.REBUILD_MAKE_MODULE: [lambda: ("m",), lambda: ("m", ModuleType)],
    _format.REBUILD_SET_MODULE_STATE: [lambda: (ModuleType("m"), {"a": 1})],
    _format.REBUILD_DICT_VIEW: [lambda: ({"a": 1}, "keys")],
    _format.REBUILD_MEMORY: [lambda: (b"abcd", "B", (4,), True)],
    _format.REBUILD_FILE_COPY: [lambda: ("text", 1, "f.txt")],
    _format.REBUILD_LRU_CACHE: [lambda: (len, 10, False)],
    _format.REBUILD_SINGLEDISPATCH: [lambda: (_closure(),)],
    _format.REBUILD_SINGLEDISPATCH_STATE: [lambda: (_singledispatch(),
                                                    (((int, lambda x: x),), None))],
    _format.REBUILD_NEW_TYPE: [lambda: ("N", int, "N", "mod")],
    _format.REBUILD_MAKE_CLASS: [lambda: (None, "C", (), {"a": 1}, _fresh_id()),
                                 lambda: (_loaded_class(), ({"b": 2}, None))],
    _format.REBUILD_MAKE_TYPEVAR: [
        lambda: (typing.TypeVar, "T", int, (), False, False, False, _fresh_id()),
        lambda: (typing.TypeVar, "T", int, (), False, False, False, _fresh_id(), "m"),
        lambda: (typing.TypeVar, "T", None, (), False, False, False, _fresh_id(), "m",
                 None)],
}

_ids = iter(range(10 ** 9))


def _fresh_id() -> str:
    """An id no class or TypeVar of this process has (a reused one returns the first object)."""
    return f"case-{next(_ids)}"


def _loaded_class() -> type:
    return _rebuild.make_class(None, "C", (), {}, _fresh_id())

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def _outcome(fn: Callable[..., Any], args: tuple) -> str:
    try:
        result = fn(*args)
    except Exception as exc:  # noqa: BLE001 - every outcome is recorded and compared
        return f"{type(exc).__module__}.{type(exc).__qualname__}: " + _ADDRESS.sub("0x?", str(exc))
    return f"ok: {type(result).__qualname__}"


def cases() -> List[Tuple[str, str, Callable[[], tuple]]]:
    """(reconstructor, case id, argument builder) for every case."""
    out: List[Tuple[str, str, Callable[[], tuple]]] = []
    for name, forms in FORMS.items():
        for f, build in enumerate(forms):
            n = len(build())
            out.append((name, f"form{f}-valid", build))
            for arity in sorted({0, n - 1, n + 1, 9} - {n} - {-1}):
                out.append((name, f"form{f}-arity{arity}",
                            lambda b=build, a=arity: (b() + (None,) * 9)[:a]))
            for pos in range(n):
                for label, bad in BAD:
                    out.append((name, f"form{f}-arg{pos}-{label}",
                                lambda b=build, p=pos, v=bad: _replaced(b(), p, v())))
                if name == _format.REBUILD_FUNCTION and f == 1 and pos == 1:
                    for field in range(13):
                        for label, bad in BAD:
                            out.append((name, f"form1-state{field}-{label}",
                                        lambda i=field, v=bad: (_closure(),
                                                                _replaced(_full_state(), i, v()))))
    return out


def _replaced(args: tuple, index: int, value: Any) -> tuple:
    return args[:index] + (value,) + args[index + 1:]


def main(twin: str) -> None:
    from fastfnpickle import _load_py
    if twin == "cython":
        from fastfnpickle import _load as twin_module  # type: ignore[attr-defined]
    else:
        twin_module = _load_py
    results = {}
    for name, case, build in cases():
        fn = getattr(twin_module, name, None) or getattr(_rebuild, name)
        results[f"{name}/{case}"] = _outcome(fn, build())
    json.dump(results, sys.stdout, indent=0, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
