"""What Python 3.14 and 3.15 changed in functions, classes and modules.

- 3.14, PEP 649/749: annotations are computed on demand by ``__annotate__``; class bodies'
  annotation scopes read the class namespace through a ``__classdict__`` cell;
  ``functools.update_wrapper`` copies ``__annotate__``; slices are code constants.
- 3.14, PEP 750: template strings (``string.templatelib.Template``).
- 3.15, PEP 810: ``lazy import``; PEP 814: ``frozendict``.

Every object is made in a producer interpreter running a script as ``__main__`` (so it
pickles by value), checked for identical bytes from both twins, and loaded in a fresh one.
Features an interpreter lacks are skipped with the reason.
"""

import sys

import pytest
from _fresh import cloudpickle_roundtrip, produce, roundtrip

needs_314 = pytest.mark.skipif(sys.version_info < (3, 14),
                               reason="deferred annotations and t-strings are Python 3.14+")
needs_315 = pytest.mark.skipif(sys.version_info < (3, 15),
                               reason="lazy imports and frozendict are Python 3.15+")


# --------------------------------------------------------------------------------------------
# Deferred annotations (PEP 649/749)

FORWARD_SOURCE = """
import fastfnpickle

def f(x: Later, y: "Later" = None) -> list[Later]:
    return [x]

# Pickled before Later exists: reading f.__annotations__ here would raise NameError.
FIRST = fastfnpickle.dumps(f)

class Later:
    size = 3

OBJ = {"first": FIRST, "f": f, "Later": Later}
"""


@needs_314
def test_forward_reference_function_pickles_before_and_after_the_name_exists(impl) -> None:
    out = roundtrip(impl, FORWARD_SOURCE, """
        import annotationlib, pickle, typing
        first = pickle.loads(obj["first"])
        assert first.__annotate__ is not None
        # The name was undefined when pickled: still undefined, but as a forward reference.
        fwd = annotationlib.get_annotations(first, format=annotationlib.Format.FORWARDREF)
        assert fwd["x"].__forward_arg__ == "Later", fwd
        try:
            first.__annotations__
        except NameError:
            pass
        else:
            raise AssertionError("Later was not defined when first was pickled")
        f, Later = obj["f"], obj["Later"]
        assert f.__annotations__ == {"x": Later, "y": "Later", "return": list[Later]}
        assert annotationlib.get_annotations(f) == f.__annotations__
        hints = typing.get_type_hints(f)
        assert hints["x"] is Later and hints["y"] is Later, hints
        assert f(1) == [1] and Later.size == 3
        print("ok")
    """)
    assert out.strip() == "ok"


CLASS_SOURCE = """
import abc, dataclasses

class Model(abc.ABC):
    field: int
    other: "Node"
    nodes: list[Node]

    @abc.abstractmethod
    def run(self) -> Node: ...

class Node:
    parent: Node | None = None
    def child(self) -> Node:
        return Node()

@dataclasses.dataclass(frozen=True)
class Point:
    "A docstring: dataclass's default one holds the frozenset's repr, in hash order."
    x: int
    tags: frozenset = frozenset({"p", "q", "r"})
    node: Node | None = None

class Impl(Model):
    def run(self) -> Node:
        return Node()

OBJ = {"Model": Model, "Node": Node, "Point": Point, "Impl": Impl}
"""


@needs_314
def test_classes_with_deferred_annotations_keep_them(impl) -> None:
    """cloudpickle #572 (an ABC with annotations: its __annotate__ reached _abc_impl)."""
    out = roundtrip(impl, CLASS_SOURCE, """
        import annotationlib, typing
        Model, Node, Point, Impl = obj["Model"], obj["Node"], obj["Point"], obj["Impl"]
        assert Model.__annotations__ == {"field": int, "other": "Node", "nodes": list[Node]}
        assert annotationlib.get_annotations(Model) == Model.__annotations__
        assert typing.get_type_hints(Model)["other"] is Node
        assert typing.get_type_hints(Node.child)["return"] is Node
        assert typing.get_type_hints(Impl.run)["return"] is Node
        assert Node.__annotations__ == {"parent": Node | None}
        assert isinstance(Impl().run(), Node) and issubclass(Impl, Model)
        p = Point(1)
        assert p.tags == frozenset({"p", "q", "r"}) and typing.get_type_hints(Point)["x"] is int
        assert [f.name for f in __import__("dataclasses").fields(Point)] == ["x", "tags", "node"]
        print("ok")
    """)
    assert out.strip() == "ok"


@needs_314
def test_annotations_set_by_hand_are_kept(impl) -> None:
    out = roundtrip(impl, """
        def f(x: int) -> int:
            return x
        f.__annotations__ = {"x": str}          # clears __annotate__

        def g(x: int):
            return x
        g.__annotate__ = lambda fmt: {"x": bytes}  # replaces it

        class C:
            a: int
        C.__annotations__ = {"b": float}

        OBJ = (f, g, C)
    """, """
        f, g, C = obj
        assert f.__annotations__ == {"x": str} and f.__annotate__ is None
        assert g.__annotations__ == {"x": bytes}
        assert C.__annotations__ == {"b": float}
        print("ok")
    """)
    assert out.strip() == "ok"


WRAPPER_SOURCE = """
import abc, functools

class Wrapper:
    # update_wrapper copies __annotate__ (3.14) onto the instance.
    def __init__(self, function):
        self.function = function
        functools.update_wrapper(self, function)
    def __call__(self, *args):
        return self.function(*args)

def annotated(x: str) -> str:
    return x * 2

class Base(abc.ABC):
    label: str
    @abc.abstractmethod
    def method(self, x: int) -> Base: ...

class Concrete(Base):
    def method(self, x: int) -> Base:
        return self

@functools.wraps(annotated)
def decorated(*args):
    return annotated(*args)

OBJ = {"plain": Wrapper(annotated), "method": Wrapper(Concrete.method),
       "decorated": decorated, "Concrete": Concrete}
"""

WRAPPER_CHECK = """
    import typing
    plain, method, decorated = obj["plain"], obj["method"], obj["decorated"]
    assert plain("ab") == "abab" and plain.__annotate__(1) == {"x": str, "return": str}
    assert method.__wrapped__.__qualname__ == "Concrete.method"
    hints = typing.get_type_hints(method.__wrapped__)
    assert hints["x"] is int and hints["return"].__name__ == "Base"
    assert decorated("c") == "cc" and decorated.__annotations__["x"] is str
    c = obj["Concrete"]()
    assert method(c, 1) is c
    print("ok")
"""


@needs_314
def test_update_wrapper_copies_of_annotate(impl) -> None:
    """cloudpickle #585: update_wrapper puts the wrapped function's __annotate__ on the
    wrapper; for a method of an annotated ABC it reaches the class namespace."""
    out = roundtrip(impl, WRAPPER_SOURCE, WRAPPER_CHECK)
    assert out.strip() == "ok"


@needs_314
def test_update_wrapper_case_against_cloudpickle() -> None:
    """For the record: what cloudpickle does with the same objects (it failed on 3.14.0;
    whatever it does now, ours must work, which the test above checks)."""
    pytest.importorskip("cloudpickle", reason="cloudpickle (test extra) is not installed")
    import subprocess
    import textwrap

    from conftest import PYTHON_IMPL
    script = textwrap.dedent(WRAPPER_SOURCE) + "\nimport cloudpickle\ncloudpickle.dumps(OBJ)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          env=PYTHON_IMPL.env(), timeout=120)
    if proc.returncode == 0:
        cloudpickle_roundtrip(WRAPPER_SOURCE, WRAPPER_CHECK)
    else:
        assert b"Error" in proc.stderr


@needs_314
def test_annotations_bytes_do_not_depend_on_hash_seed(impl) -> None:
    """Class namespaces reached through __classdict__ cells hold sets: written sorted."""
    import os

    from conftest import PYTHON_IMPL
    datas = set()
    for seed in ("0", "1", "2"):
        os.environ["PYTHONHASHSEED"] = seed
        try:
            datas.add(produce(impl, CLASS_SOURCE))
        finally:
            del os.environ["PYTHONHASHSEED"]
    assert len(datas) == 1
    if impl.name != PYTHON_IMPL.name:
        assert produce(PYTHON_IMPL, CLASS_SOURCE) in datas


# --------------------------------------------------------------------------------------------
# Code constants, template strings

def test_slice_constants(impl) -> None:
    """3.14 folds constant slices into one code constant, which marshal's old format cannot
    write; on older Pythons the same source has no slice constant and must work too."""
    out = roundtrip(impl, """
        blob = bytes(range(50))
        def pick(seq):
            return seq[::7], seq[1:3], seq[:-1][-2:], blob[2:4]
        OBJ = pick
    """, """
        r = obj(list(range(10)))
        assert r == ([0, 7], [1, 2], [7, 8], bytes([2, 3])), r
        print("ok")
    """)
    assert out.strip() == "ok"


@needs_314
def test_template_strings_in_closures_and_globals(impl) -> None:
    out = roundtrip(impl, """
        from string.templatelib import Template, Interpolation
        who = "world"
        GREETING = t"hello {who!r:>8}"
        def make(prefix):
            captured = t"{prefix}-{who}"
            def render(name):
                built = t"{prefix}:{name:^5}"   # built at call time (BUILD_TEMPLATE)
                return captured, GREETING, built
            return render
        OBJ = make("p")
    """, """
        from string.templatelib import Template, Interpolation
        captured, greeting, built = obj("ab")
        assert type(captured) is Template and captured.values == ("p", "world")
        assert greeting.strings == ("hello ", "") and greeting.interpolations[0].conversion == "r"
        assert greeting.interpolations[0].format_spec == ">8"
        assert built.values == ("p", "ab") and built.interpolations[1].format_spec == "^5"
        assert built.interpolations[1].expression == "name"
        print("ok")
    """)
    assert out.strip() == "ok"


# --------------------------------------------------------------------------------------------
# 3.15: lazy imports, frozendict

LAZY_SOURCE = """
lazy import json
lazy import xml.dom.minidom
lazy from html import escape
lazy import email.utils as eutils
import sys

def use():
    return (json.dumps([1]), xml.dom.minidom.parseString("<a/>").documentElement.tagName,
            escape("<"), eutils.quote('a"b'))

OBJ = use
# Plain lazy imports travel as module names: pickling must not import them here.
assert "json" not in sys.modules and "xml.dom.minidom" not in sys.modules
"""


@needs_315
def test_lazy_imports(impl) -> None:
    script = LAZY_SOURCE + (
        "\nimport fastfnpickle\nfastfnpickle.dumps(OBJ)\n"
        "assert 'json' not in sys.modules and 'xml.dom.minidom' not in sys.modules\n"
        "assert type(globals()['json']).__name__ == 'lazy_import'  # still lazy\n")
    out = roundtrip(impl, script + "OBJ = use\n", """
        assert obj() == ("[1]", "a", "&lt;", 'a\\\\"b'), obj()
        assert obj.__globals__["json"] is __import__("json")
        print("ok")
    """)
    assert out.strip() == "ok"


@needs_315
def test_function_with_frozendict_globals(impl) -> None:
    """3.15's exec() takes a frozendict as globals: functions defined there have it."""
    import builtins
    import pickle

    from conftest import PYTHON_IMPL, load_in_subprocess
    namespace: dict = {}
    exec("def f(y):\n    return x + y\n",
         frozendict({"x": 1, "__builtins__": builtins, "__name__": "ffp_frozen_globals"}),  # noqa: F821
         namespace)
    f = namespace["f"]
    data = impl.dumps(f)
    assert data == PYTHON_IMPL.dumps(f)
    assert pickle.loads(data)(2) == 3
    assert load_in_subprocess(data, "print(obj(5), type(obj.__globals__).__name__)",
                              impl).split() == ["6", "dict"]


@needs_315
def test_frozendict_values(impl) -> None:
    out = roundtrip(impl, """
        TABLE = frozendict({"b": 2, "a": 1, "nested": frozendict(x={"s"})})
        def make():
            local = frozendict(k=(1, 2))
            def lookup(key, default=frozendict(d=4)):
                return TABLE[key], local["k"], default["d"], TABLE["nested"]["x"]
            return lookup
        OBJ = make()
    """, """
        assert obj("a") == (1, (1, 2), 4, {"s"})
        table = obj.__globals__["TABLE"]
        assert type(table) is frozendict and list(table) == ["b", "a", "nested"]
        print("ok")
    """)
    assert out.strip() == "ok"


# --------------------------------------------------------------------------------------------
# The bytecode scanners against this interpreter's own dis module

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME",
                         "LOAD_FROM_DICT_OR_GLOBALS"})


def _globals_by_dis(code, out: set) -> set:
    import dis
    import types

    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS:
            out.add(ins.argval)
    for const in code.co_consts:
        if type(const) is types.CodeType:
            _globals_by_dis(const, out)
    return out


def test_scanner_finds_the_globals_dis_finds(impl) -> None:
    """Every opcode table the scanners use (LOAD_GLOBAL/LOAD_ATTR encodings, caches, 3.14's
    LOAD_FAST_BORROW and LOAD_SMALL_INT, annotation scopes) checked against ``dis`` on real
    code: whole stdlib modules, every nested code object."""
    import importlib
    import types

    checked = 0
    for name in ("json.decoder", "dataclasses", "functools", "enum"):
        stack = [importlib.util.find_spec(name).loader.get_code(name)]
        while stack:
            code = stack.pop()
            stack.extend(c for c in code.co_consts if type(c) is types.CodeType)
            got = set(impl.core.code_info(code).names)
            assert got == _globals_by_dis(code, set()), (name, code.co_qualname
                                                          if hasattr(code, "co_qualname")
                                                          else code.co_name)
            checked += 1
    assert checked > 200


@needs_314
def test_error_path_through_annotate_without_evaluating_it(impl) -> None:
    """The failure note walks what the pickle carries: a function's __annotate__, never
    __annotations__ (which would raise NameError for the forward reference here)."""
    import threading

    ns: dict = {"__name__": "ffp_annotate_errors", "LOCK": threading.Lock()}
    exec("class Box:\n"
         "    lock = LOCK\n"
         "def f(x: Box) -> Later:\n"
         "    return x\n", ns)
    with pytest.raises(TypeError) as info:
        impl.dumps(ns["f"])
    notes = [n for n in getattr(info.value, "__notes__", [])
             if not n.startswith("when serializing ")]  # the C pickler's own come first
    assert notes and notes[0] == ("pickling failed at f.__annotate__.__globals__['Box'].lock "
                                  "(type: _thread.lock)"), notes


class Private:
    """Importable, with private (name-mangled) members."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __secret(self) -> int:
        return self.value

    class __Inner:
        pass

    def parts(self) -> tuple:
        return self.__secret, Private.__secret, Private.__Inner


@pytest.mark.skipif(sys.version_info < (3, 15),
                    reason="the stdlib pickles private names by reference from 3.15 on")
def test_private_names_pickle_by_reference_like_the_stdlib(impl) -> None:
    import pickle

    for obj in Private(7).parts():
        data = impl.dumps(obj, 4)
        assert data == pickle.dumps(obj, 4), obj
        assert b"_Private__" in data
    bound = pickle.loads(impl.dumps(Private(7).parts()[0]))
    assert bound() == 7
