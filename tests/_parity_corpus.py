"""The corpus of the parity tests: one builder and one probe per feature of the library issue.

This file is used two ways. :func:`build_corpus` executes its own source again inside a fresh
dynamic module (``ffp_parity_corpus``, never in ``sys.modules``), so every function and class
the builders make is pickled by value, exactly as code from ``__main__`` or a notebook would be.
Imported normally (also by the child interpreters, through ``PYTHONPATH``), it supplies the
probes: each turns an object into plain data describing how it behaves (call results, class
features), so an original and a loaded copy can be compared, in this process or in another.

Builders are deterministic: rebuilding the corpus in another interpreter gives equal objects.
Probes must not depend on state a call leaves behind (they report deltas, never counters).
"""

import abc
import collections
import dataclasses
import enum
import functools
import importlib
import inspect
import logging
import os
import sys
import types
import typing
import weakref
import xml  # only the package: the submodule feature must import xml.etree.ElementTree itself
from types import ModuleType
from typing import Any, Callable, Dict, List, Sequence, Tuple

try:
    import numpy
except ImportError:  # the numpy feature is left out
    numpy = None

DYNAMIC_NAME = "ffp_parity_corpus"

Builder = Callable[[], Any]
Probe = Callable[[Any], Any]
ITEMS: Dict[str, Tuple[Builder, Probe]] = {}

# Features the stdlib itself cannot write below protocol 2 (instances of __slots__ classes
# without __getstate__: the ParamSpec annotations, dataclasses' own parameters object). Below
# that, both implementations must still fail the same way.
MIN_PROTOCOL: Dict[str, int] = {"slots_instance": 2, "dataclasses": 2, "paramspec": 2}


def item(probe: Probe) -> Callable[[Builder], Builder]:
    """Register ``build_<name>`` under ``<name>`` with the probe that describes its result."""
    def register(build: Builder) -> Builder:
        ITEMS[build.__name__[len("build_"):]] = (build, probe)
        return build
    return register


def fresh_module(name: str = DYNAMIC_NAME) -> ModuleType:
    """This file's source executed in a new module that is not in ``sys.modules``."""
    with open(os.path.abspath(__file__.replace(".pyc", ".py")), encoding="utf-8") as f:
        source = f.read()
    module = ModuleType(name)
    module.__dict__["__file__"] = __file__
    exec(compile(source, __file__, "exec"), module.__dict__)
    return module


def build_corpus() -> Dict[str, Any]:
    """``{feature name: object}``, every object made by value-only (dynamic) code."""
    module = fresh_module()
    return {name: build() for name, (build, _) in sorted(module.ITEMS.items())}


def probe(name: str, obj: Any) -> Any:
    """Plain data describing how ``obj`` (feature ``name``) behaves."""
    return ITEMS[name][1](obj)


def outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``'s value, or the name of the exception it raised."""
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("raised", type(exc).__name__)


# Module-level state read and written by the by-value functions below.
OFFSET = 10
COUNTER = 0
HELPER_LIST = [1, 2, 3]


def module_fib(n: int) -> int:
    # Recursion through the module globals (a cycle: function -> globals -> function).
    return n if n < 2 else module_fib(n - 1) + module_fib(n - 2)


# --------------------------------------------------------------------------------------------
# Functions

def probe_lambdas(o: Any) -> Any:
    return (o["add"](3), o["add"](3, 4), o["const"](), o["nested"](1), o["add"].__name__,
            o["nested"].__qualname__, o["partial"](1))


@item(probe_lambdas)
def build_lambdas() -> Any:
    add = lambda x, y=2: x * y + OFFSET  # noqa: E731
    return {"add": add, "const": lambda: "k", "nested": (lambda a: (lambda b: a + b))(5),
            "partial": functools.partial(add, y=100)}


def probe_nested(o: Any) -> Any:
    return (o["inner"](3), o["outer"](4)(5)(6), o["inner"].__qualname__,
            o["outer"].__name__)


@item(probe_nested)
def build_nested() -> Any:
    def outer(n):
        def middle(m):
            def inner(k):
                return n * 100 + m * 10 + k
            return inner
        return middle
    return {"outer": outer, "inner": outer(1)(2)}


def probe_closures(o: Any) -> Any:
    get, put, step = o["get"], o["put"], o["step"]
    before = get()
    put(before + 7)
    moved = get() - before
    put(before)
    first = step()
    return (outcome(o["never"]), o["later"](), moved,
            get.__closure__[0] is put.__closure__[0], step() - first,
            o["fact"](6), o["even"](10), o["odd"](7), o["even"](3),
            outcome(o["deleted"]), len(o["fact"].__closure__))


@item(probe_closures)
def build_closures() -> Any:
    def never():
        if False:
            x = 1  # noqa: F841

        def read():
            return x
        return read

    def later():
        def read():
            return y
        before = read
        y = "set after the closure was made"  # noqa: F841
        return before

    def deleted():
        z = 1

        def read():
            return z  # noqa: F821 (the cell is emptied below)
        del z
        return read

    def shared():
        v = 0

        def get():
            return v

        def put(n):
            nonlocal v
            v = n
            return v
        return get, put

    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - 1)

    def counter():
        count = 0

        def step():
            nonlocal count
            count += 1
            return count
        return step

    get, put = shared()
    return {"never": never(), "later": later(), "deleted": deleted(), "get": get, "put": put,
            "fact": fact, "even": is_even, "odd": is_odd, "step": counter()}


def probe_signatures(o: Any) -> Any:
    full, wrapper, renamed, kwonly = o["full"], o["wrapper"], o["renamed"], o["kwonly"]
    return (
        full(1, d=4), full(1, 9, 8, 7, d=4, z=0), str(inspect.signature(full)),
        full.__defaults__, full.__kwdefaults__,
        {k: repr(v) for k, v in full.__annotations__.items()}, full.__doc__, full.custom,
        wrapper(1, d=1), wrapper.__wrapped__ is full, wrapper.__name__, wrapper.__doc__,
        wrapper.__qualname__, renamed(), renamed.__name__, renamed.__qualname__,
        renamed.__module__, renamed.__doc__, kwonly(), kwonly(k=1),
        str(inspect.signature(kwonly)), outcome(lambda: o["posonly"](a=1)), o["posonly"](2),
    )


@item(probe_signatures)
def build_signatures() -> Any:
    def full(a: int, b: "str" = 2, /, c: float = 3, *args: int, d, e: bool = 5,
             **kw: typing.Any) -> str:
        """Full doc."""
        return f"{a}{b}{c}{args}{d}{e}{sorted(kw.items())}"
    full.custom = {"tag": [1, 2]}

    @functools.wraps(full)
    def wrapper(*args, **kwargs):
        return "wrapped:" + full(*args, **kwargs)

    def renamed():
        return "renamed result"
    renamed.__name__ = "other_name"
    renamed.__qualname__ = "Somewhere.other_name"
    renamed.__module__ = "ffp_elsewhere"
    renamed.__doc__ = "changed doc"

    def posonly(a, /):
        return a * 2

    return {"full": full, "wrapper": wrapper, "renamed": renamed,
            "kwonly": lambda *, k=7: k, "posonly": posonly}


if sys.version_info >= (3, 12):
    def probe_type_params(o: Any) -> Any:
        return (o(3), [t.__name__ for t in o.__type_params__],
                o.__annotations__["x"] is o.__type_params__[0])

    @item(probe_type_params)
    def build_type_params() -> Any:
        ns: Dict[str, Any] = {}
        exec("def ident[T](x: T) -> T:\n    return x\n", globals(), ns)
        return ns["ident"]


def _drive(awaitable: Any) -> Any:
    # Runs an awaitable that never suspends, without an event loop.
    try:
        awaitable.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the awaitable suspended")


def probe_generators(o: Any) -> Any:
    agen = o["agen"](3)
    collected = []
    while True:
        try:
            collected.append(_drive(agen.__anext__()))
        except StopAsyncIteration:
            break
    return (list(o["gen"](3)), _drive(o["coro"](1)), collected,
            inspect.isgeneratorfunction(o["gen"]), inspect.iscoroutinefunction(o["coro"]),
            inspect.isasyncgenfunction(o["agen"]), list(o["genexp"](4)))


@item(probe_generators)
def build_generators() -> Any:
    def gen(n):
        for i in range(n):
            yield i * 2

    async def coro(x):
        return x + 1

    async def agen(n):
        for i in range(n):
            yield i + OFFSET

    return {"gen": gen, "coro": coro, "agen": agen,
            "genexp": lambda n: (i * i for i in range(n) if i not in {1, 7})}


def probe_sets(o: Any) -> Any:
    return (o["member"]("red"), o["member"]("pink"), o["closure"](), sorted(o["letters"]),
            o["comp"]("abcd"), o["nested"](), sorted(o["frozen"], key=repr))


@item(probe_sets)
def build_sets() -> Any:
    letters = {"alpha", "beta", "gamma", "delta", "epsilon"}
    frozen = frozenset({"x", "y", "z", 1.5, ("t", 2)})

    def member(s):
        return s in {"red", "green", "blue", "cyan", "magenta"}

    def closure():
        return sorted(letters), sorted(frozen, key=repr)

    def nested():
        return [w for w in ("one", "two", "six") if w in {"one", "six", "ten"}]

    return {"member": member, "closure": closure, "letters": letters, "frozen": frozen,
            "comp": lambda s: [c for c in s if c in {"a", "c", "q"}], "nested": nested}


def probe_globals(o: Any) -> Any:
    bump, read = o["bump"], o["read"]
    first = bump()
    main = sys.modules["__main__"]
    corpus = sys.modules.get("_parity_corpus")
    return (bump() - first, bump.__globals__ is read.__globals__, read(), o["fib"](10),
            o["fib"].__globals__ is bump.__globals__, hasattr(main, "COUNTER"),
            None if corpus is None else corpus.COUNTER, o["helper"] is o["fib"])


@item(probe_globals)
def build_globals() -> Any:
    def bump():
        global COUNTER
        COUNTER += 1
        return COUNTER

    def read():
        return OFFSET + len(HELPER_LIST)

    return {"bump": bump, "read": read, "fib": module_fib, "helper": module_fib}


def probe_submodules(o: Any) -> Any:
    return (o["join"]("x"), o["parse"]())


@item(probe_submodules)
def build_submodules() -> Any:
    # Imported here, not at the top: a child that imports this module for the probes must not
    # get xml.etree.ElementTree from it (the pickle has to bring it in).
    importlib.import_module("xml.etree.ElementTree")

    def join(p):
        return os.path.join("root", p)

    def parse():
        return xml.etree.ElementTree.fromstring("<a><b/></a>")[0].tag

    return {"join": join, "parse": parse}


# --------------------------------------------------------------------------------------------
# Classes

class Meta(type):
    """A metaclass that leaves a mark on its classes."""

    def __new__(mcls, name, bases, ns, **kw):
        ns.setdefault("tagged_by_meta", name.lower())
        return super().__new__(mcls, name, bases, ns)

    def describe(cls):
        return f"meta:{cls.__name__}"


def probe_classes(o: Any) -> Any:
    Shape, Square, Slotted, Animal = o["Shape"], o["Square"], o["Slotted"], o["Animal"]
    s = Shape(2)
    s.size = 5
    area = s.area()
    del s.size
    return (
        area, s.size, Shape.unit().size, Shape.helper(4), repr(o["sq"]), o["sq"].area(),
        Square.sides, Shape.sides, sorted(Shape.kinds), Shape.tag, Square.tag,
        o["Base"].registry, Shape.__doc__, Square.__qualname__, Square.__mro__[1] is Shape,
        isinstance(o["sq"], Shape), type(o["sq"]) is Square,
        hasattr(Slotted(1, 2), "__dict__"), Slotted(1, 2).total(), Slotted.__slots__,
        type(o["WithMeta"]).__name__, o["WithMeta"].tagged_by_meta,
        o["WithMeta"].describe(), inspect.isabstract(Animal), outcome(Animal),
        isinstance(o["Virtual"](), Animal), issubclass(o["Dog"], Animal), o["dog"].hello(),
        isinstance(o["dog"], Animal), type(o["dog"]) is o["Dog"],
    )


@item(probe_classes)
def build_classes() -> Any:
    class Base:
        registry: List[str] = []

        def __init_subclass__(cls, tag="none", **kw):
            super().__init_subclass__(**kw)
            cls.tag = tag
            Base.registry.append(cls.__name__)

    class Shape(Base, tag="shape"):
        """Shape doc."""

        sides = 0
        kinds = frozenset({"a", "b", "c", "d"})

        def __init__(self, size):
            self._size = size

        @property
        def size(self):
            return self._size

        @size.setter
        def size(self, value):
            self._size = value

        @size.deleter
        def size(self):
            self._size = None

        @classmethod
        def unit(cls):
            return cls(1)

        @staticmethod
        def helper(x):
            return x * 3

        def area(self):
            return self._size ** 2

        def __repr__(self):
            return f"{type(self).__name__}({self._size})"

    class Square(Shape, tag="square"):
        sides = 4

        def area(self):
            return super().area() + 1

    class Slotted:
        __slots__ = ("a", "b")

        def __init__(self, a, b):
            self.a = a
            self.b = b

        def total(self):
            return self.a + self.b

    class WithMeta(metaclass=Meta):
        pass

    class Animal(abc.ABC):
        @abc.abstractmethod
        def speak(self):
            ...

        def hello(self):
            return "hello " + self.speak()

    class Dog(Animal):
        def speak(self):
            return "woof"

    class Virtual:
        pass

    Animal.register(Virtual)
    return {"Base": Base, "Shape": Shape, "Square": Square, "sq": Square(3),
            "Slotted": Slotted, "WithMeta": WithMeta,
            "Animal": Animal, "Dog": Dog, "Virtual": Virtual, "dog": Dog()}


def probe_slots_instance(o: Any) -> Any:
    def add_attr():
        o.c = 1

    return (type(o).__name__, o.total(), hasattr(o, "__dict__"), outcome(add_attr))


@item(probe_slots_instance)
def build_slots_instance() -> Any:
    class Pair:
        __slots__ = ("a", "b")

        def __init__(self, a, b):
            self.a = a
            self.b = b

        def total(self):
            return self.a + self.b

    return Pair(1, 2)


def probe_enums(o: Any) -> Any:
    Color, Level, Perm = o["Color"], o["Level"], o["Perm"]
    members = o["members"]
    rw = Perm.R | Perm.W
    return ([m.name for m in Color], members[0] is Color.RED, members[1] is Level.HIGH,
            members[2] == rw, type(members[2]) is Perm, Color(1) is Color.RED,
            Color("g") is Color.GREEN, Color.RED.describe(), repr(Color.GREEN),
            Level.HIGH + 1, Level.LOW < Level.HIGH, rw.value, Perm.W in rw, Perm.X in rw,
            isinstance(Color.RED, enum.Enum), [a.value for a in o["Auto"]])


@item(probe_enums)
def build_enums() -> Any:
    class Color(enum.Enum):
        RED = 1
        GREEN = "g"

        def describe(self):
            return self.name.lower()

    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2

    class Perm(enum.Flag):
        R = 4
        W = 2
        X = 1

    class Auto(enum.Enum):
        A = enum.auto()
        B = enum.auto()

    return {"Color": Color, "Level": Level, "Perm": Perm, "Auto": Auto,
            "members": [Color.RED, Level.HIGH, Perm.R | Perm.W]}


def probe_dataclasses(o: Any) -> Any:
    Point, Frozen, p, f = o["Point"], o["Frozen"], o["p"], o["f"]

    def assign():
        f.a = 9

    return ([x.name for x in dataclasses.fields(Point)], dataclasses.asdict(p),
            dataclasses.astuple(Frozen(1)), Point(1) < Point(2), repr(Point(1)),
            hash(f) == hash(Frozen(3, (4,))), outcome(assign), type(p) is Point,
            dataclasses.replace(p, x=5).norm1(), sorted(Point.__dataclass_fields__),
            dataclasses.fields(Point)[2].default_factory is list)


@item(probe_dataclasses)
def build_dataclasses() -> Any:
    @dataclasses.dataclass(order=True)
    class Point:
        x: int
        y: int = 0
        tags: list = dataclasses.field(default_factory=list)

        def norm1(self):
            return abs(self.x) + abs(self.y)

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: int
        b: typing.Tuple[int, ...] = ()

    return {"Point": Point, "Frozen": Frozen, "p": Point(1, 2, ["t"]), "f": Frozen(3, (4,))}


def probe_records(o: Any) -> Any:
    Pair, Classic, Movie, Partial = o["Pair"], o["Classic"], o["Movie"], o["Partial"]
    return (Pair._fields, Pair._field_defaults, tuple(Pair(1)), Pair(1).both(),
            o["pair"]._asdict(),
            type(o["pair"]) is Pair, {k: repr(v) for k, v in Pair.__annotations__.items()},
            Classic._fields, tuple(Classic(1)), type(o["classic"]) is Classic,
            Movie(title="t", year=1), {k: repr(v) for k, v in Movie.__annotations__.items()},
            Movie.__total__, Partial.__total__, sorted(Movie.__required_keys__),
            sorted(Partial.__optional_keys__), Movie.__qualname__)


@item(probe_records)
def build_records() -> Any:
    class Pair(typing.NamedTuple):
        x: int
        y: str = "d"

        def both(self):
            return f"{self.x}{self.y}"

    class Movie(typing.TypedDict):
        title: str
        year: int

    class Partial(typing.TypedDict, total=False):
        note: str

    Classic = collections.namedtuple("Classic", "a b", defaults=(2,))
    return {"Pair": Pair, "Classic": Classic, "pair": Pair(1, "z"), "classic": Classic(1),
            "Movie": Movie, "Partial": Partial}


def probe_generics(o: Any) -> Any:
    T, Box, Closable = o["T"], o["Box"], o["Closable"]
    out = [T.__name__, T.__bound__ is int, o["K"].__constraints__ == (str, bytes),
           Box.__parameters__ == (T,), Box.__parameters__[0] is T, Box(3).get(),
           typing.get_origin(o["alias"]) is Box, typing.get_args(o["alias"]) == (bool,),
           typing.get_type_hints(Box.get)["return"] is T,
           isinstance(o["Resource"](), Closable), isinstance(1, Closable),
           bool(getattr(Closable, "_is_protocol", False))]
    return out


@item(probe_generics)
def build_generics() -> Any:
    T = typing.TypeVar("T", bound=int)
    K = typing.TypeVar("K", str, bytes)

    class Box(typing.Generic[T]):
        def __init__(self, value: T) -> None:
            self.value = value

        def get(self) -> T:
            return self.value

    @typing.runtime_checkable
    class Closable(typing.Protocol):
        def close(self) -> None:
            ...

    class Resource:
        def close(self):
            return "closed"

    return {"T": T, "K": K, "Box": Box, "alias": Box[bool], "Closable": Closable,
            "Resource": Resource}


def probe_paramspec(o: Any) -> Any:
    P = o["P"]
    return (type(P).__name__, P.__name__, o["Deco"](lambda x: x + 1)(1),
            typing.get_args(o["callable"])[0] is P, o["Deco"].__parameters__[0] is P,
            o["Deco"].__parameters__[1] is o["R"])

@item(probe_paramspec)
def build_paramspec() -> Any:
    P = typing.ParamSpec("P")
    R = typing.TypeVar("R")

    class Deco(typing.Generic[P, R]):
        def __init__(self, fn: typing.Callable[P, R]) -> None:
            self.fn = fn

        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
            return self.fn(*args, **kwargs)

    return {"P": P, "R": R, "Deco": Deco, "callable": typing.Callable[P, int]}


# --------------------------------------------------------------------------------------------
# Other objects

def probe_code_and_cells(o: Any) -> Any:
    cell, empty = o["cell"], o["empty"]
    return (types.FunctionType(o["lambda_code"], {})(), o["code"].co_name,
            o["code"].co_freevars, o["code"] is o["f"].__code__, cell.cell_contents,
            cell is o["f"].__closure__[0], outcome(lambda: empty.cell_contents),
            type(cell) is types.CellType, o["f"](1), o["standalone"].cell_contents)


@item(probe_code_and_cells)
def build_code_and_cells() -> Any:
    k = 3

    def f(x):
        return x + k

    return {"code": f.__code__, "lambda_code": (lambda: 42).__code__, "f": f,
            "cell": f.__closure__[0], "empty": types.CellType(),
            "standalone": types.CellType(frozenset({"s1", "s2", "s3"}))}


def probe_modules(o: Any) -> Any:
    dyn = o["dyn"]
    return (o["json"] is sys.modules["json"], o["ospath"] is os.path, dyn.__name__,
            dyn.__doc__, dyn.X, dyn.get_x(), isinstance(dyn.Thing(), dyn.Thing),
            dyn.__name__ in sys.modules, type(dyn) is types.ModuleType)


@item(probe_modules)
def build_modules() -> Any:
    import json
    dyn = types.ModuleType("ffp_parity_dynamic_module", "dynamic doc")
    exec("X = 2\ndef get_x():\n    return X\nclass Thing:\n    pass\n", dyn.__dict__)
    return {"json": json, "ospath": os.path, "dyn": dyn}


def probe_mappings(o: Any) -> Any:
    names = ("keys", "values", "items", "okeys", "ovalues", "oitems")
    return (type(o["proxy"]).__name__, dict(o["proxy"]),
            [(type(o[n]).__name__, list(o[n])) for n in names])


@item(probe_mappings)
def build_mappings() -> Any:
    d = {"a": 1, "b": 2}
    od = collections.OrderedDict([("z", 1), ("y", 2)])
    return {"proxy": types.MappingProxyType({"k": [1]}), "keys": d.keys(),
            "values": d.values(), "items": d.items(), "okeys": od.keys(),
            "ovalues": od.values(), "oitems": od.items()}


def probe_loggers(o: Any) -> Any:
    return (o["named"] is logging.getLogger("ffp.parity.logger"),
            o["root"] is logging.getLogger(), o["named"].name)


@item(probe_loggers)
def build_loggers() -> Any:
    return {"named": logging.getLogger("ffp.parity.logger"), "root": logging.getLogger()}


def probe_methods(o: Any) -> Any:
    a, b = o["members"]
    ws = o["ws"]
    Item = o["Item"]
    return (type(ws).__name__, len(ws), a in ws, b in ws, o["bound"](),
            o["bound"].__self__ is a, o["bound_cls"](5).n, o["bound_cls"].__self__ is Item,
            o["by_hand"](), o["builtin_bound"](), type(o["cm"]).__name__,
            o["cm"].__func__(), type(o["sm"]).__name__, o["sm"].__func__(),
            o["prop"].__doc__, o["prop"].fget(b), o["prop"].fset is None)


@item(probe_methods)
def build_methods() -> Any:
    class Item:
        def __init__(self, n):
            self.n = n

        def double(self):
            return self.n * 2

        @classmethod
        def make(cls, n):
            return cls(n)

    def plain():
        return "plain"

    a, b = Item(1), Item(2)
    return {"ws": weakref.WeakSet([a, b]), "members": [a, b], "bound": a.double,
            "bound_cls": Item.make, "by_hand": types.MethodType(lambda self: self.n + 40, b),
            "builtin_bound": "abc".upper, "cm": classmethod(plain), "sm": staticmethod(plain),
            "prop": property(Item.double, None, None, "prop doc"), "Item": Item}


def probe_descriptors(o: Any) -> Any:
    s = o["Slotted"]()
    o["slot"].__set__(s, 7)
    return (o["real"] is float.real, o["real"].__get__(2.5), o["imag"] is complex.imag,
            o["fglobals"] is types.FunctionType.__globals__,
            o["slot"] is o["Slotted"].__dict__["x"], s.x)


@item(probe_descriptors)
def build_descriptors() -> Any:
    class Slotted:
        __slots__ = ("x",)

    return {"real": float.real, "imag": complex.__dict__["imag"],
            "slot": Slotted.__dict__["x"], "Slotted": Slotted,
            "fglobals": types.FunctionType.__globals__}


def probe_typing(o: Any) -> Any:
    out = [o["union"] == typing.Union[int, str], o["optional"] == typing.Optional[int],
           o["callable"] == typing.Callable[..., int],
           o["callable2"] == typing.Callable[[int, str], None], o["list"] == typing.List[int],
           o["literal"] == typing.Literal["a", 1], o["tuple"] == typing.Tuple[int, ...],
           o["any"] is typing.Any, typing.get_args(o["dict_local"])[1] is o["Local"],
           repr(o["builtin_generic"])]
    if "pipe_union" in o:
        out.append(o["pipe_union"] == (int | str))
    return out


@item(probe_typing)
def build_typing() -> Any:
    class Local:
        pass

    out = {"union": typing.Union[int, str], "optional": typing.Optional[int],
           "callable": typing.Callable[..., int],
           "callable2": typing.Callable[[int, str], None], "list": typing.List[int],
           "literal": typing.Literal["a", 1], "dict_local": typing.Dict[str, Local],
           "tuple": typing.Tuple[int, ...], "any": typing.Any, "Local": Local,
           "builtin_generic": list[int], "pipe_union": int | str}
    return out


def probe_singletons(o: Any) -> Any:
    return (o["ellipsis"] is Ellipsis, o["ni"] is NotImplemented,
            o["tEllipsis"] is type(Ellipsis), o["tNotImplemented"] is type(NotImplemented),
            o["tNone"] is type(None),
            sorted(n for n, v in o["types"].items() if v is not getattr(types, n)),
            sorted(o["types"]))


@item(probe_singletons)
def build_singletons() -> Any:
    return {"ellipsis": Ellipsis, "ni": NotImplemented, "tEllipsis": type(Ellipsis),
            "tNotImplemented": type(NotImplemented), "tNone": type(None),
            "types": {n: v for n, v in sorted(vars(types).items())
                      if isinstance(v, type) and not n.startswith("_")}}


def probe_main_module(o: Any) -> Any:
    return (o["f"](2), o["f"].__module__, o["K"].__module__, o["K"]().method(),
            o["K"].__qualname__, o["g"]())


@item(probe_main_module)
def build_main_module() -> Any:
    # Code whose module is called __main__ (a script), without being this process's __main__.
    main = types.ModuleType("__main__")
    exec("SCALE = 3\n"
         "def f(x):\n    return x * SCALE\n"
         "class K:\n    def method(self):\n        return f(5)\n"
         "g = lambda: [K.__name__, SCALE]\n", main.__dict__)
    return {"f": main.f, "K": main.K, "g": main.g}


def probe_big(o: Any) -> Any:
    return (o["total"](), [f(1) for f in o["many"][:5]], len(o["many"]), o["many"][-1](2))


@item(probe_big)
def build_big() -> Any:
    # Past the per-thread pickler's reuse limit and over several 64 KiB frames.
    blob = bytes(range(256)) * 400

    def total():
        return sum(blob[::97])

    many = [(lambda k: (lambda x: x * k + len(blob)))(k) for k in range(600)]
    return {"total": total, "many": many}


if numpy is not None:
    def probe_numpy(o: Any) -> Any:
        total, shape, dtype = o()
        return (total, shape, dtype)

    @item(probe_numpy)
    def build_numpy() -> Any:
        arr = numpy.arange(4096, dtype=numpy.uint8)

        def summary():
            return int(arr.sum()), tuple(arr.shape), str(arr.dtype)
        return summary


# --------------------------------------------------------------------------------------------
# Randomly generated programs (the property test): what a loaded program's objects do

def probe_generated(objects: Sequence[Any], xs: Sequence[int] = (0, 1, 2)) -> List[Any]:
    """Call results of every generated object: functions are called with each of ``xs``;
    classes are instantiated and their ``m*`` methods called, ``a*`` attributes and ``p*``
    properties read (in name order)."""
    out: List[Any] = []
    for obj in objects:
        if isinstance(obj, type):
            inst = obj()
            names = sorted(vars(obj))
            out.append((
                [[getattr(inst, n)(x) for x in xs] for n in names if n.startswith("m")],
                [summary(getattr(obj, n)) for n in names if n.startswith("a")],
                [getattr(inst, n) for n in names if n.startswith("p")],
            ))
        else:
            out.append([obj(x) for x in xs])
    return out


def summary(value: Any) -> Any:
    """``value`` as comparable plain data (sets as sorted lists)."""
    if isinstance(value, (set, frozenset)):
        return ("set", sorted(value))
    if isinstance(value, tuple):
        return tuple(summary(v) for v in value)
    return value
