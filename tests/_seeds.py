"""Real fastfnpickle pickles to mutate: the shared seed corpus of the fuzzers.

Two fuzzers start from these objects: ``tests/test_fuzz.py`` (hypothesis mutations in worker
subprocesses) can take :func:`corpus_objects` as its ``_corpus_objects``, and the atheris
harness in ``fuzz/`` writes :func:`seed_pickles` as libFuzzer's seed corpus.

Every function and class is made inside a function (``<locals>`` in its qualified name) or in
a dynamic module, so the pickler has to write it by value: the seeds carry code objects,
closures, class bodies, enum members and module dicts for the mutations to damage.

The first 19 objects of :func:`corpus_objects` are, in order, the ones test_fuzz.py's own
builder makes (its ``_corpus`` picks some of them by index); anything new goes after them.
"""

import collections
import dataclasses
import enum
import functools
import io
import os.path
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

# Protocols the seeds are written at: the default first, then the framed/unframed and
# text-opcode variants the unpickler reads through different paths.
DEFAULT_PROTOCOLS: Tuple[int, ...] = (5, 4, 2, 0)
# The few objects also written at every protocol of DEFAULT_PROTOCOLS (by index into
# corpus_objects: a plain function, a closure, a class and the nested mixture).
MULTI_PROTOCOL: Tuple[int, ...] = (3, 4, 8, 16)


def corpus_objects() -> List[Any]:
    """Objects fastfnpickle pickles by value; see the module docstring for the order."""

    def outer(a: int, b: str = "x", *args: Any, c: float = 1.5, **kw: Any) -> Tuple[Any, ...]:
        """A docstring."""
        return (a, b, args, c, kw, os.path.join("p", b))

    outer.attr = {"k": [1, 2]}  # type: ignore[attr-defined]

    def make_counter(start: int) -> Callable[[], int]:
        n = start

        def step() -> int:
            nonlocal n
            n += 1
            return n
        return step

    def fact(k: int) -> int:
        return 1 if k <= 1 else k * fact(k - 1)

    def gen(n: int) -> Any:
        yield from range(n)

    async def coro() -> int:
        return 1

    class Base:
        __slots__ = ("x",)

        def __init__(self, x: int) -> None:
            self.x = x

    class Point(Base):
        """A local class."""
        scale = 3

        def norm(self) -> int:
            return self.x * self.scale

        @classmethod
        def make(cls) -> "Point":
            return cls(1)

        @staticmethod
        def helper(v: int) -> int:
            return v + 1

        @property
        def double(self) -> int:
            return self.x * 2

    class Color(enum.Enum):
        RED = 1
        GREEN = "g"

    @dataclass
    class Record:
        name: str
        values: List[int]

    T = typing.TypeVar("T", bound=int)
    mod = types.ModuleType("fuzz_dynamic_mod")
    exec("def f(x):\n    return x * 2\nCONST = [1, 2.5, 'three']\n", mod.__dict__)

    nested = {
        "funcs": [lambda x: x + 1, lambda: None, outer, make_counter(3)],
        "sets": ({1, 2, 3}, frozenset({"a", "b"})),
        "bytes": b"\x00\xff" * 8,
        "big": 2 ** 100,
        "float": -1.25,
        "tuple": (None, True, False, ("deep", ("deeper", []))),
        "cls": Point,
        "inst": Record("r", [1, 2, 3]),
    }
    return [
        lambda x: x + 1,
        lambda x, y=3: (x, y, {1, 2}),
        lambda s: s in frozenset({"a", "b", "c"}),
        outer,
        make_counter(10),
        fact,
        gen,
        coro,
        Point,
        Point(4),
        Color,
        Color.GREEN,
        Record,
        Record("x", [1]),
        T,
        mod,
        nested,
        [make_counter(i) for i in range(5)],
        (Point, Point.make, Point.helper, Color.RED),
    ] + list(extra_objects().values())


def extra_objects() -> Dict[str, Any]:
    """Objects for the reconstructors and function-state fields the first 19 leave out."""

    def shared_cells() -> Tuple[Callable[[], int], Callable[[int], None]]:
        value = 0

        def get() -> int:
            return value

        def put(v: int) -> None:
            nonlocal value
            value = v
        return get, put

    def later() -> Callable[[], Any]:
        def read() -> Any:
            return unset  # noqa: F821  (an empty cell until assigned below, never here)
        if False:
            unset = 1
        return read

    def annotated(x: int, /, y: "str" = "s", *, z: Optional[float] = None) -> Dict[str, Any]:
        return {"x": x, "y": y, "z": z}

    annotated.__qualname__ = "renamed.annotated"
    annotated.__module__ = "some_module"
    annotated.__doc__ = None
    annotated.__kwdefaults__ = {"z": 2.5}

    @functools.lru_cache(maxsize=4)
    def cached(n: int) -> int:
        return n * n

    @functools.singledispatch
    def show(x: Any) -> str:
        return "any"

    @show.register
    def _show_int(x: int) -> str:
        return "int"

    def uses_sets(v: Any) -> Any:
        return (v in {"alpha", "beta"}, v in frozenset({1, 2, 3}), {v: (v, [v])})

    def deep_closure(a: int) -> Callable[[int], Callable[[int], int]]:
        def mid(b: int) -> Callable[[int], int]:
            def inner(c: int) -> int:
                return a + b + c
            return inner
        return mid

    def raiser() -> None:
        try:
            raise ValueError("x")
        except ValueError as exc:
            raise KeyError("y") from exc
        finally:
            pass

    class Meta(type):
        def __repr__(cls) -> str:
            return f"<Meta {cls.__name__}>"

    class WithMeta(metaclass=Meta):
        count: int = 0

        def __init_subclass__(cls, **kw: Any) -> None:
            super().__init_subclass__(**kw)
            cls.count = 1

    class Sub(WithMeta):
        pass

    class Shade(enum.IntFlag):
        R = 1
        G = 2
        B = 4

    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2

        def describe(self) -> str:
            return self.name.lower()

    @dataclass(frozen=True, order=True)
    class Frozen:
        a: int = 0
        b: Tuple[int, ...] = dataclasses.field(default=(1, 2))

    class Pair(typing.NamedTuple):
        left: int
        right: Any = None

    P = typing.ParamSpec("P")
    Ts = typing.TypeVarTuple("Ts")
    UserId = typing.NewType("UserId", int)
    S = typing.TypeVar("S", int, str, covariant=True)

    module = types.ModuleType("fuzz_dynamic_mod2")
    exec("import os\nX = 1\ndef f():\n    return X, os.sep\nclass K:\n    pass\n",
         module.__dict__)
    data = {"a": 1, "b": [2]}
    get, put = shared_cells()
    recursive: List[Any] = []
    recursive.append(recursive)
    return {
        "bare_code": fact_code(),
        "shared_cells": (get, put),
        "cell_alone": get.__closure__[0] if get.__closure__ else None,
        "empty_cell": later(),
        "annotated": annotated,
        "lru_cache": cached,
        "singledispatch": show,
        "sets_in_code": uses_sets,
        "deep_closure": (deep_closure, deep_closure(1), deep_closure(1)(2)),
        "exceptions": raiser,
        "metaclass": (WithMeta, Sub),
        "intflag": (Shade, Shade.R | Shade.B),
        "intenum": (Level, Level.HIGH),
        "frozen_dataclass": (Frozen, Frozen(3, (4,))),
        "namedtuple": (Pair, Pair(1)),
        "typing": (P, Ts, UserId, S),
        "module": module,
        "module_and_function": (module, module.f),
        "imported_module": (collections, os.path),
        "dict_views": (data.keys(), data.values(), data.items()),
        "memoryview": memoryview(b"abcdef")[1:4],
        "file_copy": (io.BytesIO(b"bytes"), io.StringIO("text")),
        "recursive_list": recursive,
    }


def fact_code() -> types.CodeType:
    """A bare code object (pickled through the ``code`` reconstructor)."""
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)
    return fib.__code__


def parity_objects() -> Dict[str, Any]:
    """The parity tests' corpus (tests/_parity_corpus.py), when it can be built here."""
    try:
        import _parity_corpus
        return {f"parity-{k}": v for k, v in _parity_corpus.build_corpus().items()}
    except Exception:  # another file's corpus: a failure there must not stop the fuzzers
        return {}


def named_objects(parity: bool = True) -> Dict[str, Any]:
    """Every seed object by a short name (used in the seed file names)."""
    names = ["lambda", "lambda-defaults", "lambda-frozenset", "outer", "counter", "fact", "gen",
             "coro", "class", "instance", "enum", "enum-member", "dataclass",
             "dataclass-instance", "typevar", "module", "nested", "counters", "class-parts"]
    objects = corpus_objects()
    named = {f"{i:02d}-{n}": o for i, (n, o) in enumerate(zip(names, objects))}
    for i, (n, o) in enumerate(extra_objects().items(), start=len(names)):
        named[f"{i:02d}-{n}"] = o
    if parity:
        named.update(parity_objects())
    return named


def seed_pickles(dumps: Callable[[Any, int], bytes],
                 protocols: Sequence[int] = DEFAULT_PROTOCOLS,
                 parity: bool = True) -> Dict[str, bytes]:
    """``{file name: pickle}``: every named object at the default protocol, a few at all of
    ``protocols``. Objects a protocol cannot write are left out of that protocol."""
    seeds: Dict[str, bytes] = {}
    objects = named_objects(parity)
    multi = {list(objects)[i] for i in MULTI_PROTOCOL}
    for name, obj in objects.items():
        for protocol in protocols if name in multi else protocols[:1]:
            try:
                seeds[f"{name}.p{protocol}"] = dumps(obj, protocol)
            except Exception:
                continue
    return seeds


def iter_functions(obj: Any, limit: int = 64) -> Iterator[types.FunctionType]:
    """Functions reachable from ``obj`` through containers, classes, modules, methods and
    cells, without calling anything the object defines (no ``getattr`` on instances, no
    ``__eq__``/``__hash__``: loaded objects may come from forged code)."""
    seen = set()
    stack = [obj]
    found = 0
    while stack and found < limit and len(seen) < 10 * limit:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        t = type(o)
        if t is types.FunctionType:
            found += 1
            yield o
            stack.extend(o.__closure__ or ())
            stack.extend(o.__defaults__ or ())
            stack.extend((o.__kwdefaults__ or {}).values())
        elif t in (tuple, list, set, frozenset):
            stack.extend(o)
        elif t is dict:
            stack.extend(o.values())
        elif t is types.CellType:
            try:
                stack.append(o.cell_contents)
            except ValueError:
                pass
        elif t in (staticmethod, classmethod, types.MethodType):
            stack.append(o.__func__)
        elif t is property:
            stack.extend((o.fget, o.fset, o.fdel))
        elif t is types.ModuleType:
            stack.extend(dict.values(o.__dict__))
        elif issubclass(t, type):
            # Read through type's own descriptors: a metaclass from the pickle may define
            # __getattribute__ or properties, which must not run here.
            if _TYPE_FLAGS(o) & _HEAPTYPE:
                stack.extend(_TYPE_DICT(o).values())
                stack.append(t)
        elif _TYPE_FLAGS(t) & _HEAPTYPE:
            stack.append(t)  # an instance of a class made at run time: the class has code


_TYPE_DICT = type.__dict__["__dict__"].__get__  # type: ignore[index]
_TYPE_FLAGS = type.__dict__["__flags__"].__get__  # type: ignore[index]
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes made by a class statement or type()
