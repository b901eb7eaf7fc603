"""Names used only in string annotations (``from __future__ import annotations``) travel with a
function pickled by value when they resolve to classes, modules, typing constructs or importable
objects, so ``typing.get_type_hints()`` works after loading; the rest never fails a pickle."""

import pickle
import sys
import typing

from _fresh import cloudpickle_roundtrip, roundtrip
from conftest import Impl

SOURCE = """
from __future__ import annotations
import collections, decimal, typing
from typing import Optional

class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y
    def moved(self, by: Vector) -> Point:
        return Point(self.x + by[0], self.y + by[1])

Vector = tuple[float, float]
Number = typing.NewType("Number", float)
NOT_A_TYPE = object()      # resolves, but to nothing that belongs in an annotation

def area(p: Point, scale: Optional[decimal.Decimal] = None, *rest: Number,
         counts: collections.Counter[str] | None = None,
         junk: NOT_A_TYPE = None, missing: Undefined = None) -> float:
    return p.x * p.y

OBJ = (area, Point)
"""

CHECK = """
import collections, decimal, typing
area, Point = obj
g = area.__globals__
assert "NOT_A_TYPE" not in g and "Undefined" not in g
assert {"Point", "Optional", "decimal", "Number", "collections"} <= set(g)
hints = typing.get_type_hints(area, localns={"NOT_A_TYPE": int, "Undefined": int})
assert hints["p"] is Point and hints["return"] is float
assert hints["scale"] == typing.Optional[decimal.Decimal]
assert hints["rest"].__name__ == "Number" and hints["rest"].__supertype__ is float
moved = typing.get_type_hints(Point.moved)
assert moved == {"by": tuple[float, float], "return": Point}
print(area(Point(2.0, 3.0)), sorted(typing.get_type_hints(Point.__init__)))
"""


def test_string_annotations_resolve_after_loading(impl: Impl) -> None:
    assert roundtrip(impl, SOURCE, CHECK) == "6.0 ['return', 'x', 'y']\n"


def test_cloudpickle_leaves_them_unresolved() -> None:
    out = cloudpickle_roundtrip(SOURCE, """
        import typing
        try:
            typing.get_type_hints(obj[0])
        except NameError as exc:
            print("NameError")
    """)
    assert out == "NameError\n"


def test_unpicklable_annotation_names_never_fail_the_pickle(impl: Impl) -> None:
    import threading

    ns: dict = {"__name__": "ffp_ann_dyn", "LOCK": threading.Lock()}
    exec("from __future__ import annotations\n"
         "def f(x: LOCK[int], y: 'not valid python (') -> dict:\n    return {}\n", ns)
    ns["f"].__annotations__["z"] = "[" * 100_000 + "]" * 100_000  # too deep for the parser
    loaded = pickle.loads(impl.dumps(ns["f"]))
    assert "LOCK" not in loaded.__globals__ and loaded(1, 2) == {}
    assert loaded.__annotations__["x"] == "LOCK[int]"
    assert loaded.__annotations__["y"] == "'not valid python ('"


def test_real_annotations_add_nothing(impl: Impl) -> None:
    def f(x: int) -> typing.List[int]:
        return [x]

    loaded = pickle.loads(impl.dumps(f))
    allowed = {"__builtins__", "__name__", "__package__"}
    if sys.version_info >= (3, 14):
        allowed.add("typing")  # read by the __annotate__ that travels instead (PEP 649)
    assert set(loaded.__globals__) <= allowed
    assert loaded.__annotations__ == {"x": int, "return": typing.List[int]}
