"""Enum members keep the attributes their ``__init__`` or custom ``__new__`` gave them when the
enum is pickled by value; members a custom ``__new__`` made that cannot be rebuilt from their
value are refused at dump time, never on load."""

import enum
import pickle
import threading
from typing import Any

import pytest
from _fresh import cloudpickle_roundtrip, roundtrip
from conftest import Impl

PLANET = """
import enum

class Planet(enum.Enum):
    MERCURY = (3.303e+23, 2.4397e6)
    EARTH = (5.976e+24, 6.37814e6)
    TERRA = (5.976e+24, 6.37814e6)   # an alias
    def __init__(self, mass, radius):
        self.mass = mass
        self.radius = radius
    @property
    def surface_gravity(self):
        return 6.673e-11 * self.mass / (self.radius * self.radius)

class Color(enum.Enum):
    def __new__(cls, value, label):
        member = object.__new__(cls)
        member._value_ = value
        member.label = label
        member.tags = [label.upper()]
        return member
    RED = (1, "red")
    GREEN = (2, "green")

class Code(int, enum.Enum):
    def __new__(cls, value, phrase):
        member = int.__new__(cls, value)
        member._value_ = value
        member.phrase = phrase
        return member
    OK = (200, "fine")
    MISSING = (404, "not found")

OBJ = (Planet, Planet.EARTH, Color, Code.MISSING, lambda: Planet.MERCURY.mass)
"""

CHECK_PLANET = """
Planet, earth, Color, missing, mercury_mass = obj
assert earth is Planet.EARTH and Planet.TERRA is earth
assert earth.mass == 5.976e+24 and earth.radius == 6.37814e6
assert round(earth.surface_gravity, 2) == 9.8
assert Planet((3.303e+23, 2.4397e6)) is Planet.MERCURY and mercury_mass() == 3.303e+23
assert Color(2) is Color.GREEN and Color.RED.label == "red" and Color.GREEN.tags == ["GREEN"]
Code = type(missing)
assert missing == 404 and Code(200).phrase == "fine" and missing.phrase == "not found"
assert Code.OK + 1 == 201
print(earth.mass, Color.RED.label, missing.phrase)
"""


def test_enum_member_attributes_survive(impl: Impl) -> None:
    assert roundtrip(impl, PLANET, CHECK_PLANET) == "5.976e+24 red not found\n"


def test_cloudpickle_loses_them() -> None:
    # The gap this closes: cloudpickle 3.1 rebuilds the members without their attributes.
    out = cloudpickle_roundtrip(PLANET, "print(hasattr(obj[1], 'mass'), obj[1].value[0])")
    assert out == "False 5.976e+24\n"


def test_plain_enum_bytes_unchanged(impl: Impl) -> None:
    # Members without attributes of their own add nothing to the class state.
    class Plain(enum.Enum):
        A = 1
        B = 2

    data = impl.dumps(Plain)
    loaded = pickle.loads(data)
    assert loaded.A.value == 1 and vars(loaded.B).keys() == vars(Plain.B).keys()


class _Weird(bytes, enum.Enum):
    def __new__(cls, value: int, label: str) -> Any:
        member = bytes.__new__(cls, [value])
        member._value_ = value   # not what bytes(value) would give back
        member.label = label
        return member

    ZERO = (0, "zero")


def test_unrebuildable_mixin_member_is_refused_at_dump(impl: Impl) -> None:
    cls = _Weird
    cls.__module__ = "__main__"  # as if defined in a script: by value
    try:
        with pytest.raises(pickle.PicklingError, match="cannot be rebuilt from its value") as info:
            impl.dumps({"codes": cls})
    finally:
        cls.__module__ = __name__
    assert any(n.startswith("pickling failed at obj['codes']") for n in info.value.__notes__)


def test_unpicklable_member_attribute_path(impl: Impl) -> None:
    class Guarded(enum.Enum):
        ONE = 1

        def __init__(self, value: int) -> None:
            self.lock = threading.Lock()

    with pytest.raises(TypeError) as info:
        impl.dumps({"g": Guarded})
    ours = [n for n in info.value.__notes__ if not n.startswith("when serializing ")]  # 3.14+
    assert ours[0].startswith("pickling failed at obj['g'].ONE.lock "), info.value.__notes__


def test_date_mixin_enum_is_refused_at_dump_not_loaded_broken(impl: Impl) -> None:
    import datetime

    # Its member's value is a date, and date(a_date) fails: the metaclass cannot make the
    # member again. (Before, the class loaded without working members.)
    class Holiday(datetime.date, enum.Enum):
        NEW_YEAR = (2020, 1, 1)

    with pytest.raises(pickle.PicklingError, match=r"member NEW_YEAR cannot be rebuilt"):
        impl.dumps(Holiday)
