"""Enums, dataclasses and typing constructs defined dynamically: pickled by value, and one
object per class / member / TypeVar within a process, across separate pickles."""

import collections
import dataclasses
import enum
import pickle
import typing
from typing import Any, Callable, Dict, Tuple

import pytest
from conftest import check_features_in_fresh_interpreter, load_in_subprocess, run_check


def build_enums() -> Any:
    class Color(enum.Enum):
        RED = 1
        GREEN = "g"

        def describe(self):
            return self.name.lower()

        @property
        def is_red(self):
            return self is Color.RED

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

    return {"Color": Color, "Level": Level, "Perm": Perm, "Auto": Auto}


def enum_members(classes: Dict[str, Any]) -> Any:
    C, L, P, A = classes["Color"], classes["Level"], classes["Perm"], classes["Auto"]
    return [C.RED, C.GREEN, L.HIGH, P.R | P.W, P.X, A.B]


CHECK_ENUMS = """
import enum
classes, members = obj
Color, Level, Perm, Auto = (classes[k] for k in ("Color", "Level", "Perm", "Auto"))
assert members == [Color.RED, Color.GREEN, Level.HIGH, Perm.R | Perm.W, Perm.X, Auto.B]
assert members[0] is Color.RED and members[2] is Level.HIGH and members[5] is Auto.B
assert members[3] == Perm.R | Perm.W and type(members[3]) is Perm
assert [m.name for m in Color] == ["RED", "GREEN"] and len(Color) == 2
assert Color(1) is Color.RED and Color["GREEN"] is Color.GREEN and Color("g") is Color.GREEN
assert Color.RED.describe() == "red" and Color.RED.is_red and not Color.GREEN.is_red
assert repr(Color.RED) == "<Color.RED: 1>"
assert isinstance(Color.RED, Color) and isinstance(Color, enum.EnumMeta)
assert Level.HIGH + 1 == 3 and isinstance(Level.LOW, int) and Level(2) is Level.HIGH
assert Level.LOW < Level.HIGH
rw = Perm.R | Perm.W
assert Perm.W in rw and Perm.X not in rw and (rw & Perm.W) is Perm.W
assert Perm(6) == rw and Perm(0) == Perm(0)
assert [a.value for a in Auto] == [1, 2]
assert Color.__qualname__ == "build_enums.<locals>.Color"
"""


def build_dataclasses() -> Any:
    @dataclasses.dataclass(order=True)
    class Point:
        x: int
        y: int = 0
        tags: list = dataclasses.field(default_factory=list)
        secret: str = dataclasses.field(default="s", repr=False, compare=False)

        def norm1(self):
            return abs(self.x) + abs(self.y)

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: int
        b: typing.Tuple[int, ...] = ()

    return {"Point": Point, "Frozen": Frozen, "p": Point(1, 2, ["t"]), "f": Frozen(3, (4,))}


CHECK_DATACLASSES = """
import dataclasses
Point, Frozen = obj["Point"], obj["Frozen"]
assert dataclasses.is_dataclass(Point) and dataclasses.is_dataclass(obj["p"])
assert [f.name for f in dataclasses.fields(Point)] == ["x", "y", "tags", "secret"]
assert dataclasses.fields(Point)[2].default_factory is list
assert dataclasses.asdict(Point(1)) == {"x": 1, "y": 0, "tags": [], "secret": "s"}
assert dataclasses.astuple(obj["p"]) == (1, 2, ["t"], "s")
assert Point(1) < Point(2) and Point(1, secret="a") == Point(1, secret="b")
assert repr(Point(1)) == "build_dataclasses.<locals>.Point(x=1, y=0, tags=[])"
assert dataclasses.replace(obj["p"], x=5).norm1() == 7
assert Point(1).tags is not Point(1).tags
f = obj["f"]
assert (f.a, f.b) == (3, (4,)) and hash(f) == hash(Frozen(3, (4,)))
try:
    f.a = 9
except dataclasses.FrozenInstanceError:
    pass
else:
    raise AssertionError("frozen dataclass accepted an assignment")
assert type(obj["p"]) is Point
"""


def build_namedtuples() -> Any:
    class Pair(typing.NamedTuple):
        x: int
        y: str = "d"

        def both(self):
            return f"{self.x}{self.y}"

    Classic = collections.namedtuple("Classic", "a b", defaults=(2,))
    return {"Pair": Pair, "Classic": Classic, "pair": Pair(1, "z"), "classic": Classic(1)}


CHECK_NAMEDTUPLES = """
Pair, Classic = obj["Pair"], obj["Classic"]
assert Pair._fields == ("x", "y") and Pair._field_defaults == {"y": "d"}
assert Pair(1) == (1, "d") and Pair(1).both() == "1d"
assert Pair.__annotations__ == {"x": int, "y": str}
assert obj["pair"]._asdict() == {"x": 1, "y": "z"} and type(obj["pair"]) is Pair
assert obj["pair"]._replace(x=2) == Pair(2, "z")
assert Classic._fields == ("a", "b") and Classic(1) == (1, 2)
assert type(obj["classic"]) is Classic and obj["classic"].b == 2
"""


def build_typeddict() -> Any:
    class Movie(typing.TypedDict):
        title: str
        year: int

    class Partial(typing.TypedDict, total=False):
        note: str

    return {"Movie": Movie, "Partial": Partial}


CHECK_TYPEDDICT = """
Movie, Partial = obj["Movie"], obj["Partial"]
assert Movie(title="t", year=1) == {"title": "t", "year": 1}
assert Movie.__annotations__ == {"title": str, "year": int}
assert Movie.__total__ is True and Partial.__total__ is False
assert Movie.__required_keys__ == frozenset({"title", "year"})
assert Partial.__optional_keys__ == frozenset({"note"})
assert Movie.__qualname__ == "build_typeddict.<locals>.Movie"
"""


def build_generics() -> Any:
    T = typing.TypeVar("T", bound=int)
    K = typing.TypeVar("K", str, bytes)
    Cov = typing.TypeVar("Cov", covariant=True)

    class Box(typing.Generic[T]):
        def __init__(self, value: T) -> None:
            self.value = value

        def get(self) -> T:
            return self.value

    class Pair(typing.Generic[K, Cov]):
        pass

    return {"T": T, "K": K, "Cov": Cov, "Box": Box, "Pair": Pair, "alias": Box[bool]}


CHECK_GENERICS = """
import typing
T, K, Cov, Box, Pair = (obj[k] for k in ("T", "K", "Cov", "Box", "Pair"))
assert type(T) is typing.TypeVar and T.__name__ == "T" and T.__bound__ is int
assert K.__constraints__ == (str, bytes) and Cov.__covariant__ and not T.__covariant__
assert Box.__parameters__ == (T,) and Box.__parameters__[0] is T
assert Pair.__parameters__[0] is K and Pair.__parameters__[1] is Cov
assert typing.get_type_hints(Box.get)["return"] is T
assert Box(3).get() == 3
assert typing.get_origin(obj["alias"]) is Box and typing.get_args(obj["alias"]) == (bool,)
assert Box[int].__origin__ is Box
"""


def build_protocol() -> Any:
    @typing.runtime_checkable
    class Closable(typing.Protocol):
        def close(self) -> None:
            ...

    class Sized2(typing.Protocol):
        size: int

    class Resource:
        def close(self):
            return "closed"

    return {"Closable": Closable, "Sized2": Sized2, "Resource": Resource}


CHECK_PROTOCOL = """
import typing
Closable, Resource = obj["Closable"], obj["Resource"]
assert isinstance(Resource(), Closable) and not isinstance(1, Closable)
assert issubclass(Resource, Closable)
assert Closable._is_protocol and obj["Sized2"]._is_protocol
class Impl(Closable):
    def close(self):
        return "impl"
assert Impl().close() == "impl"
"""


FEATURES: Dict[str, Tuple[Callable[[], Any], str]] = {
    "enums": (lambda: (lambda c: (c, enum_members(c)))(build_enums()), CHECK_ENUMS),
    "dataclasses": (build_dataclasses, CHECK_DATACLASSES),
    "namedtuples": (build_namedtuples, CHECK_NAMEDTUPLES),
    "typeddict": (build_typeddict, CHECK_TYPEDDICT),
    "generics": (build_generics, CHECK_GENERICS),
    "protocol": (build_protocol, CHECK_PROTOCOL),
}


def build_paramspec() -> Any:
    P = typing.ParamSpec("P")
    R = typing.TypeVar("R")

    class Decorator(typing.Generic[P, R]):
        def __init__(self, fn: typing.Callable[P, R]) -> None:
            self.fn = fn

        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
            return self.fn(*args, **kwargs)

    return {"P": P, "R": R, "Decorator": Decorator, "callable": typing.Callable[P, int]}

FEATURES["paramspec"] = (build_paramspec, """
import typing
P, R, Decorator = obj["P"], obj["R"], obj["Decorator"]
assert type(P) is typing.ParamSpec and P.__name__ == "P"
assert Decorator.__parameters__ == (P, R) and Decorator.__parameters__[0] is P
assert Decorator(lambda x: x + 1)(1) == 2
assert typing.get_args(obj["callable"])[0] is P
""")


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_round_trip_in_process(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    run_check(check, pickle.loads(impl.dumps(build())))


def test_all_features_in_fresh_interpreter(impl) -> None:
    check_features_in_fresh_interpreter(impl, FEATURES)


def test_enum_members_identical_in_one_process(impl) -> None:
    classes = build_enums()
    Color, Perm = classes["Color"], classes["Perm"]
    assert pickle.loads(impl.dumps(Color)) is Color
    assert pickle.loads(impl.dumps(Color.RED)) is Color.RED
    assert pickle.loads(impl.dumps(Perm.R | Perm.X)) is (Perm.R | Perm.X)


def test_identity_across_separate_pickles_in_fresh_interpreter(impl) -> None:
    classes = build_enums()
    generics = build_generics()
    first = impl.dumps((classes, generics["T"]))
    dcs = build_dataclasses()
    second = impl.dumps((enum_members(classes), generics["Box"], dcs["p"]))
    third = impl.dumps(dcs["Point"])
    load_in_subprocess(pickle.dumps((first, second, third)), """
        classes, T = pickle.loads(obj[0])
        members, Box, point = pickle.loads(obj[1])
        Color, Level, Perm, Auto = (classes[k] for k in ("Color", "Level", "Perm", "Auto"))
        assert members[0] is Color.RED and members[1] is Color.GREEN
        assert members[2] is Level.HIGH and members[5] is Auto.B
        assert members[3] == Perm.R | Perm.W and members[4] is Perm.X
        assert Box.__parameters__[0] is T  # one TypeVar per id in a process
        # A dataclass pickled on its own (third) and through an instance (second) is one class.
        Point = pickle.loads(obj[2])
        assert type(point) is Point and isinstance(point, Point)
        import dataclasses
        assert dataclasses.asdict(point) == {"x": 1, "y": 2, "tags": ["t"], "secret": "s"}
    """, impl)
