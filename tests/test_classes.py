"""Classes pickled by value (defined in functions or in ``__main__``): methods, properties,
class/static methods, ``__slots__``, metaclasses, ``__init_subclass__``, ABCs, qualnames,
instances, and one class object per class id within a process."""

import base64
import pickle
import textwrap
from typing import Any, Callable, Dict, Tuple

import pytest
from conftest import load_in_subprocess, run_check, run_python


def build_methods() -> Any:
    class Shape:
        """A shape."""
        sides = 0

        def __init__(self, size):
            self._size = size

        @property
        def size(self):
            """the size"""
            return self._size

        @size.setter
        def size(self, value):
            self._size = value

        @size.deleter
        def size(self):
            del self._size

        @classmethod
        def unit(cls):
            return cls(1)

        @staticmethod
        def describe():
            return "shape"

        def area(self):
            return self._size ** 2

        def __repr__(self):
            return f"{type(self).__name__}({self._size})"

        def __eq__(self, other):
            return type(self) is type(other) and self._size == other._size

        __hash__ = None

    class Square(Shape):
        sides = 4

        def area(self):
            return super().area() + 0  # zero-argument super: a __class__ cell

    return {"Shape": Shape, "Square": Square, "inst": Square(3)}


CHECK_METHODS = """
Shape, Square = obj["Shape"], obj["Square"]
assert Shape.__doc__ == "A shape." and Shape.size.__doc__ == "the size"
u = Square.unit()
assert type(u) is Square and u.size == 1 and Square.sides == 4
s = Square(2)
assert s.area() == 4 and repr(s) == "Square(2)"
s.size = 5
assert s.area() == 25
del s.size
assert not hasattr(s, "_size")
assert Square.describe() == "shape" and s.describe() == "shape"
assert isinstance(Shape.__dict__["unit"], classmethod)
assert isinstance(Shape.__dict__["describe"], staticmethod)
assert isinstance(Shape.__dict__["size"], property)
assert Shape.__hash__ is None
assert Square.area.__closure__[0].cell_contents is Square  # super() still finds the class
inst = obj["inst"]
assert type(inst) is Square and inst == Square(3) and inst.area() == 9
assert Square.__mro__[1] is Shape
"""


def build_slots() -> Any:
    class Point:
        __slots__ = ("x", "y")

        def __init__(self, x, y):
            self.x = x
            self.y = y

    class Point3(Point):
        __slots__ = ("z",)

    p3 = Point3(1, 2)
    p3.z = 3
    return {"Point": Point, "p": Point(1, 2), "p3": p3}


CHECK_SLOTS = """
Point = obj["Point"]
assert Point.__slots__ == ("x", "y")
p = obj["p"]
assert type(p) is Point and (p.x, p.y) == (1, 2)
assert not hasattr(p, "__dict__")
try:
    p.other = 1
except AttributeError:
    pass
else:
    raise AssertionError("__slots__ lost: instance accepted a new attribute")
p3 = obj["p3"]
assert (p3.x, p3.y, p3.z) == (1, 2, 3) and type(p3).__mro__[1] is Point
"""


def build_metaclass() -> Any:
    class Meta(type):
        def __new__(mcls, name, bases, ns, **kw):
            ns.setdefault("tag", name.lower())
            return super().__new__(mcls, name, bases, ns)

        def describe(cls):
            return "meta:" + cls.__name__

        @property
        def upper(cls):
            return cls.__name__.upper()

    class WithMeta(metaclass=Meta):
        pass

    class Child(WithMeta):
        tag = "custom"

    return {"Meta": Meta, "WithMeta": WithMeta, "Child": Child}


CHECK_METACLASS = """
Meta, WithMeta, Child = obj["Meta"], obj["WithMeta"], obj["Child"]
assert type(WithMeta) is Meta and type(Child) is Meta
assert WithMeta.tag == "withmeta" and Child.tag == "custom"
assert WithMeta.describe() == "meta:WithMeta" and Child.upper == "CHILD"
class New(WithMeta):
    pass
assert type(New) is Meta and New.tag == "new"
"""


def build_init_subclass() -> Any:
    class Registry:
        seen: dict = {}

        def __init_subclass__(cls, *, key, **kw):
            super().__init_subclass__(**kw)
            Registry.seen[cls.__name__] = key

    class A(Registry, key="a"):
        pass

    return {"Registry": Registry, "A": A}


CHECK_INIT_SUBCLASS = """
Registry, A = obj["Registry"], obj["A"]
# Loading A must not re-run the hook (it would run without the class keywords A was made with).
assert Registry.seen == {"A": "a"}, Registry.seen
class B(Registry, key="b"):
    pass
assert Registry.seen == {"A": "a", "B": "b"}
try:
    class C(Registry):
        pass
except TypeError:
    pass
else:
    raise AssertionError("__init_subclass__ lost its required keyword")
"""


def build_abc() -> Any:
    import abc

    class Base(abc.ABC):
        @abc.abstractmethod
        def run(self):
            ...

        @property
        @abc.abstractmethod
        def name(self):
            ...

    class Concrete(Base):
        def run(self):
            return "ran"

        @property
        def name(self):
            return "concrete"

    class Half(Base):
        def run(self):
            return "half"

    class Virtual:
        pass

    Base.register(Virtual)
    Base.register(complex)
    return {"Base": Base, "Concrete": Concrete, "Half": Half, "Virtual": Virtual}


CHECK_ABC = """
import abc
Base, Concrete, Half, Virtual = obj["Base"], obj["Concrete"], obj["Half"], obj["Virtual"]
assert isinstance(Base, abc.ABCMeta)
assert Base.__abstractmethods__ == frozenset({"run", "name"})
assert Half.__abstractmethods__ == frozenset({"name"})
for cls in (Base, Half):
    try:
        cls()
    except TypeError:
        pass
    else:
        raise AssertionError(f"{cls.__name__} is abstract and must not instantiate")
c = Concrete()
assert c.run() == "ran" and c.name == "concrete" and isinstance(c, Base)
assert issubclass(Virtual, Base) and isinstance(Virtual(), Base)
assert issubclass(complex, Base) and isinstance(1j, Base)
assert not issubclass(int, Base)
class Late:
    pass
Base.register(Late)  # the registry still works after load
assert issubclass(Late, Base)
"""


def build_qualnames() -> Any:
    class Outer:
        class Inner:
            def method(self):
                return "inner"

        def method(self):
            return "outer"

    return {"Outer": Outer, "Inner": Outer.Inner, "Renamed": type("Renamed", (), {})}


CHECK_QUALNAMES = """
Outer, Inner = obj["Outer"], obj["Inner"]
assert Outer.__qualname__ == "build_qualnames.<locals>.Outer"
assert Inner.__qualname__ == "build_qualnames.<locals>.Outer.Inner"
assert Outer.Inner is Inner
assert Inner.method.__qualname__ == "build_qualnames.<locals>.Outer.Inner.method"
assert Outer.__module__ == "test_classes" and Inner().method() == "inner"
assert obj["Renamed"].__qualname__ == "Renamed"
"""


FEATURES: Dict[str, Tuple[Callable[[], Any], str]] = {
    "methods": (build_methods, CHECK_METHODS),
    "slots": (build_slots, CHECK_SLOTS),
    "metaclass": (build_metaclass, CHECK_METACLASS),
    "init_subclass": (build_init_subclass, CHECK_INIT_SUBCLASS),
    "abc": (build_abc, CHECK_ABC),
    "qualnames": (build_qualnames, CHECK_QUALNAMES),
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_round_trip_in_process(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    # Fresh classes that this process has never pickled: the loaded ones are the originals.
    loaded = pickle.loads(impl.dumps(build()))
    run_check(check, loaded)


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_feature_in_fresh_interpreter(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    load_in_subprocess(impl.dumps(build()), check, impl)


def test_same_class_object_in_one_process(impl) -> None:
    Square = build_methods()["Square"]
    assert pickle.loads(impl.dumps(Square)) is Square
    a = pickle.loads(impl.dumps(Square(1)))
    b = pickle.loads(impl.dumps(Square(2)))
    assert type(a) is type(b) is Square
    # A different class with the same source is a different class.
    Other = build_methods()["Square"]
    assert pickle.loads(impl.dumps(Other)) is Other is not Square


def test_same_class_across_two_pickles_in_fresh_interpreter(impl) -> None:
    feats = build_methods()
    Shape, Square = feats["Shape"], feats["Square"]
    first = impl.dumps(Square)
    second = impl.dumps([Square(7), Shape(1)])
    load_in_subprocess(pickle.dumps((first, second)), """
        Square = pickle.loads(obj[0])
        inst, shape = pickle.loads(obj[1])
        assert type(inst) is Square and isinstance(inst, Square)
        assert isinstance(shape, Square.__mro__[1]) and isinstance(inst, type(shape))
        assert pickle.loads(obj[0]) is Square  # a third load: still the same class
    """, impl)


MAIN_CLASSES = """
import abc, base64, sys
import fastfnpickle

class Base(abc.ABC):
    @abc.abstractmethod
    def go(self): ...

class Impl(Base):
    __slots__ = ("v",)
    def __init__(self, v):
        self.v = v
    def go(self):
        return self.v * 2
    @classmethod
    def make(cls):
        return cls(21)

print(base64.b64encode(fastfnpickle.dumps(Impl)).decode())
print(base64.b64encode(fastfnpickle.dumps([Impl(1), Base])).decode())
"""


def test_main_classes_across_two_pickles(impl) -> None:
    out = run_python(MAIN_CLASSES, env=impl.env())
    first, second = (base64.b64decode(line) for line in out.split())
    check = """
        Impl = pickle.loads(obj[0])
        inst, Base = pickle.loads(obj[1])
        assert Impl.__module__ == "__main__" and Impl.__qualname__ == "Impl"
        assert type(inst) is Impl and isinstance(inst, Base) and Impl.__mro__[1] is Base
        assert inst.go() == 2 and Impl.make().go() == 42
        assert Base.__abstractmethods__ == frozenset({"go"})
    """
    exec(textwrap.dedent(check), {"obj": (first, second), "pickle": pickle})
    load_in_subprocess(pickle.dumps((first, second)), check, impl)
