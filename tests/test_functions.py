"""Functions pickled by value: lambdas, nested and ``__main__`` functions, signatures,
attributes, generator/coroutine kinds, builtins, ``global`` statements, shared globals.

Each feature is a builder (makes the objects) plus a check (assert statements run on the
loaded ``obj``). Every check runs in-process, and all of them run again in one fresh
interpreter per implementation.
"""

import base64
import functools
import pickle
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, Tuple

import pytest
from conftest import check_features_in_fresh_interpreter, load_in_subprocess, run_check, run_python


def dyn_namespace(source: str, module_name: str) -> Dict[str, Any]:
    """Execute ``source`` as the body of a module that is not in ``sys.modules``."""
    ns: Dict[str, Any] = {"__name__": module_name}
    exec(compile(textwrap.dedent(source), f"<{module_name}>", "exec"), ns)
    return ns


# --------------------------------------------------------------------------------------------
# Builders and checks

def build_lambdas() -> Any:
    k = 10
    return {"plain": lambda x: x + 1, "closure": lambda x: x * k,
            "default": lambda x, y=5: x - y, "nested": lambda: (lambda z: z + k)}


CHECK_LAMBDAS = """
assert obj["plain"](1) == 2
assert obj["closure"](3) == 30
assert obj["default"](7) == 2
assert obj["nested"]()(1) == 11
assert obj["plain"].__name__ == "<lambda>"
"""


def build_nested() -> Any:
    def level1(a):
        def level2(b):
            def level3(c):
                return a + b + c
            return level3
        return level2
    return {"outer": level1, "inner": level1(1)(2)}


CHECK_NESTED = """
assert obj["outer"](1)(2)(3) == 6
assert obj["inner"](3) == 6
assert obj["inner"].__qualname__ == "build_nested.<locals>.level1.<locals>.level2.<locals>.level3"
"""


def build_signatures() -> Any:
    def sig(a, b=2, /, c=3, *args, d, e=5, **kw):
        return (a, b, c, args, d, e, kw)

    def kwonly(*, x, y="y"):
        return x + y

    def posonly(p, /):
        return p
    return {"sig": sig, "kwonly": kwonly, "posonly": posonly,
            "sig_text": str(__import__("inspect").signature(sig))}


CHECK_SIGNATURES = """
import inspect
sig = obj["sig"]
assert sig(1, d=4) == (1, 2, 3, (), 4, 5, {})
assert sig(1, 9, 8, 7, d=0, e=1, z=2) == (1, 9, 8, (7,), 0, 1, {"z": 2})
assert sig.__defaults__ == (2, 3)
assert sig.__kwdefaults__ == {"e": 5}
assert str(inspect.signature(sig)) == obj["sig_text"]
try:
    sig(1, b=2, d=3)  # b is positional-only: lands in **kw
except TypeError:
    raise AssertionError("b should have gone to **kw")
assert sig(1, b=2, d=3)[6] == {"b": 2}
assert obj["kwonly"](x="x") == "xy"
assert obj["kwonly"].__kwdefaults__ == {"y": "y"}
try:
    obj["kwonly"]("x")
except TypeError:
    pass
else:
    raise AssertionError("keyword-only argument accepted positionally")
assert obj["posonly"](4) == 4
try:
    obj["posonly"](p=4)
except TypeError:
    pass
else:
    raise AssertionError("positional-only argument accepted by keyword")
"""


def build_attributes() -> Any:
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            return fn(*a, **k) + 1
        return wrapper

    @deco
    def base(x: int, y: "list[str]" = None) -> int:
        """base doc"""
        return x

    base.custom = {"k": [1, 2]}

    def renamed():
        return "r"
    renamed.__name__ = "new_name"
    renamed.__qualname__ = "Somewhere.new_name"
    renamed.__module__ = "ffp_nonexistent.module"
    renamed.__doc__ = None

    def undocumented():
        pass
    return {"wrapped": base, "renamed": renamed, "undocumented": undocumented}


CHECK_ATTRIBUTES = """
w = obj["wrapped"]
assert w(1) == 2
assert w.__name__ == "base"
assert w.__qualname__ == "build_attributes.<locals>.base"
assert w.__module__ == "test_functions"
assert w.__doc__ == "base doc"
assert w.__annotations__ == {"x": int, "y": "list[str]", "return": int}
assert w.custom == {"k": [1, 2]}
assert w.__wrapped__(5) == 5
assert w.__wrapped__.__name__ == "base"
# __wrapped__ and the wrapper's closure cell hold one and the same function.
assert any(c.cell_contents is w.__wrapped__ for c in w.__closure__)
assert set(w.__dict__) == {"custom", "__wrapped__"}
r = obj["renamed"]
assert r() == "r"
assert (r.__name__, r.__qualname__, r.__module__) == (
    "new_name", "Somewhere.new_name", "ffp_nonexistent.module")
assert r.__code__.co_name == "renamed"
assert obj["undocumented"].__doc__ is None
assert obj["undocumented"].__dict__ == {}
assert obj["undocumented"].__annotations__ == {}
"""


def build_kinds() -> Any:
    def gen(n):
        yield from range(n)

    async def coro(x):
        return x * 2

    async def agen(n):
        for i in range(n):
            yield i
    return {"gen": gen, "coro": coro, "agen": agen}


CHECK_KINDS = """
import asyncio, inspect
assert inspect.isgeneratorfunction(obj["gen"])
assert list(obj["gen"](3)) == [0, 1, 2]
assert inspect.iscoroutinefunction(obj["coro"])
assert asyncio.run(obj["coro"](21)) == 42
assert inspect.isasyncgenfunction(obj["agen"])
async def _collect(n):
    return [i async for i in obj["agen"](n)]
assert asyncio.run(_collect(3)) == [0, 1, 2]
"""


def build_builtins() -> Any:
    ns = dyn_namespace("""
        def uses_builtins(xs):
            return sorted(map(abs, xs)), len(xs), max(xs), isinstance(xs, list)
    """, "ffp_test_builtins_mod")
    shadow = dyn_namespace("""
        len = lambda x: 42   # a module global shadowing a builtin wins

        def uses_shadowed(xs):
            return len(xs), max(xs)
    """, "ffp_test_shadow_mod")
    return {"uses": ns["uses_builtins"], "shadowed": shadow["uses_shadowed"]}


CHECK_BUILTINS = """
assert obj["uses"]([3, -1, 2]) == ([1, 2, 3], 3, 3, True)
g = obj["uses"].__globals__
for name in ("sorted", "map", "abs", "len", "max", "isinstance"):
    assert name not in g, name  # builtins are not captured as globals
assert obj["shadowed"]([1, 7]) == (42, 7)
assert "len" in obj["shadowed"].__globals__ and "max" not in obj["shadowed"].__globals__
assert len([1, 2]) == 2  # the shadowing stays inside the rebuilt module globals
"""


def build_globals_statement() -> Any:
    ns = dyn_namespace("""
        COUNTER = 0

        def bump(n):
            global COUNTER
            COUNTER += n
            return COUNTER

        def read():
            return COUNTER

        def create():
            global CREATED
            CREATED = "yes"
            return CREATED

        def delete():
            global COUNTER
            del COUNTER
    """, "__main__")
    other = dyn_namespace("""
        def read():
            return COUNTER
        COUNTER = "other"
    """, "ffp_test_other_mod")
    return {"bump": ns["bump"], "read": ns["read"], "create": ns["create"],
            "delete": ns["delete"], "other_read": other["read"]}


CHECK_GLOBALS_STATEMENT = """
import sys
main = sys.modules["__main__"]
saved = dict(main.__dict__)
main.COUNTER = "loader's own"
COUNTER = "checker's own"
try:
    g = obj["bump"].__globals__
    assert g is obj["read"].__globals__ is obj["create"].__globals__ is obj["delete"].__globals__
    assert obj["other_read"].__globals__ is not g
    assert g is not main.__dict__ and g is not globals()
    assert obj["read"]() == 0
    assert obj["bump"](2) == 2
    assert obj["bump"](3) == 5
    assert obj["read"]() == 5  # one shared rebuilt globals dict
    assert main.COUNTER == "loader's own" and COUNTER == "checker's own"
    assert obj["create"]() == "yes"
    assert g["CREATED"] == "yes"
    assert "CREATED" not in globals() and "CREATED" not in main.__dict__
    assert obj["other_read"]() == "other"
    obj["delete"]()
    assert "COUNTER" not in g and main.COUNTER == "loader's own"
    for mod in list(sys.modules.values()):
        assert getattr(mod, "CREATED", None) != "yes", mod
finally:
    main.__dict__.clear()
    main.__dict__.update(saved)
"""


def build_shared_module_globals() -> Any:
    ns = dyn_namespace("""
        import math
        STATE = {"calls": 0}
        def one():
            STATE["calls"] += 1
            return math.pi
        def two():
            return STATE["calls"]
        def three():
            return one() + two()
    """, "ffp_test_shared_mod")
    return {"one": ns["one"], "two": ns["two"], "three": ns["three"]}


CHECK_SHARED_MODULE_GLOBALS = """
import math
one, two, three = obj["one"], obj["two"], obj["three"]
assert one.__globals__ is two.__globals__ is three.__globals__
assert one.__globals__["STATE"] is two.__globals__["STATE"]
assert one.__globals__["__name__"] == "ffp_test_shared_mod"
assert one() == math.pi and two() == 1
assert three() == math.pi + 2
# three() reached one and two through the shared dict: the same objects.
assert one.__globals__["one"] is one and one.__globals__["two"] is two
"""


FEATURES: Dict[str, Tuple[Callable[[], Any], str]] = {
    "lambdas": (build_lambdas, CHECK_LAMBDAS),
    "nested": (build_nested, CHECK_NESTED),
    "signatures": (build_signatures, CHECK_SIGNATURES),
    "attributes": (build_attributes, CHECK_ATTRIBUTES),
    "kinds": (build_kinds, CHECK_KINDS),
    "builtins": (build_builtins, CHECK_BUILTINS),
    "global_statement": (build_globals_statement, CHECK_GLOBALS_STATEMENT),
    "shared_globals": (build_shared_module_globals, CHECK_SHARED_MODULE_GLOBALS),
}

if sys.version_info >= (3, 12):
    def build_type_params() -> Any:
        ns = dyn_namespace("""
            def first[T, *Ts, **P](x: T, *rest: *Ts) -> T:
                return x
            class Box[U]:
                def get[V](self, v: V) -> U | V:
                    return v
        """, "ffp_test_type_params_mod")
        return {"first": ns["first"], "get": ns["Box"].get}

    FEATURES["type_params"] = (build_type_params, """
import typing
f = obj["first"]
assert f(3, 4) == 3
t, ts, p = f.__type_params__
assert (type(t), type(ts), type(p)) == (typing.TypeVar, typing.TypeVarTuple, typing.ParamSpec)
assert [x.__name__ for x in f.__type_params__] == ["T", "Ts", "P"]
assert f.__annotations__["x"] is t and f.__annotations__["return"] is t
(v,) = obj["get"].__type_params__
assert v.__name__ == "V" and obj["get"](None, 5) == 5
""")


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_round_trip_in_process(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    run_check(check, pickle.loads(impl.dumps(build())))


def test_all_features_in_fresh_interpreter(impl) -> None:
    check_features_in_fresh_interpreter(impl, FEATURES)


# --------------------------------------------------------------------------------------------
# __main__ functions (script and -c) and modules the loading side cannot import

MAIN_SOURCE = """
import base64, math, sys
import fastfnpickle

SCALE = 3

def helper(x):
    return x * SCALE

def main_func(x, *, y=2.5):
    "main doc"
    return helper(x) + math.floor(y)

class Acc:
    def __init__(self):
        self.total = 0
    def add(self, v):
        self.total += v
        return self

payload = {"f": main_func, "lam": lambda: SCALE, "cls": Acc, "inst": Acc().add(4)}
sys.stdout.write(base64.b64encode(fastfnpickle.dumps(payload)).decode())
"""

CHECK_MAIN = """
f = obj["f"]
assert f(2) == 8 and f(1, y=4.9) == 7
assert f.__module__ == "__main__" and f.__doc__ == "main doc"
assert f.__globals__["helper"](1) == 3
assert obj["lam"]() == 3
acc = obj["cls"]().add(2).add(3)
assert acc.total == 5
assert obj["cls"].__module__ == "__main__" and obj["cls"].__qualname__ == "Acc"
assert type(obj["inst"]) is obj["cls"] and obj["inst"].total == 4
"""


def _check_main_payload(data: bytes, impl) -> None:
    run_check(CHECK_MAIN, pickle.loads(data))
    load_in_subprocess(data, CHECK_MAIN, impl)


def test_main_functions_from_script(impl, tmp_path) -> None:
    script = tmp_path / "ffp_script.py"
    script.write_text(MAIN_SOURCE)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, env=impl.env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    _check_main_payload(base64.b64decode(proc.stdout), impl)


def test_main_functions_from_dash_c(impl) -> None:
    out = run_python(MAIN_SOURCE, env=impl.env())
    _check_main_payload(base64.b64decode(out), impl)


UNIMPORTABLE_MODULE = """
import math
FACTOR = 5

def make():
    def inner(x):
        return math.sqrt(x) * FACTOR
    return inner

lam = lambda x: x + FACTOR

def top(x):
    return x * FACTOR
"""


def test_functions_of_module_missing_on_loading_side(impl, tmp_path) -> None:
    name = "ffp_tmpmod_unimportable"
    (tmp_path / f"{name}.py").write_text(UNIMPORTABLE_MODULE)
    # Pickle in a child that can import the module, load in one that cannot.
    out = run_python(f"""
        import base64, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import fastfnpickle, {name} as mod
        nested = fastfnpickle.dumps({{"inner": mod.make(), "lam": mod.lam}})
        # A module dropped from sys.modules cannot be found by name: by value.
        del sys.modules[{name!r}]
        orphan = fastfnpickle.dumps(mod.top)
        print(base64.b64encode(nested).decode())
        print(base64.b64encode(orphan).decode())
    """, env=impl.env())
    nested, orphan = (base64.b64decode(line) for line in out.split())
    load_in_subprocess(pickle.dumps((nested, orphan)), f"""
        import importlib.util
        assert importlib.util.find_spec({name!r}) is None
        nested = pickle.loads(obj[0])
        top = pickle.loads(obj[1])
        assert nested["inner"](16) == 20.0
        assert nested["lam"](1) == 6
        assert top(2) == 10
        assert top.__module__ == {name!r} and nested["lam"].__module__ == {name!r}
        assert {name!r} not in sys.modules
    """, impl)


def test_same_function_twice_gives_identical_bytes(impl) -> None:
    f = build_shared_module_globals()["three"]
    assert impl.dumps(f) == impl.dumps(f)
