"""The class identity contract, end to end: producers and loaders in separate interpreters.

- two classes whose pickled state differs anywhere never load as one;
- a class keeps its id for life, and a loader applies later pickles of it to the class it holds;
- a new ``class`` statement is a new class everywhere;
- two producers of the same unchanged class give one class on a loader;
- a class pickled again where it was loaded gives the producer's bytes.
"""

import os
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional

import pytest
from conftest import Impl, run_python

import fastfnpickle

# --------------------------------------------------------------------------------------------
# Helpers: scripts run as __main__, each writing pickles to files


def produce(impl: Impl, tmp_path: "os.PathLike[str]", source: str, *args: str,
            env: Optional[Dict[str, str]] = None, name: str = "producer.py",
            dumper: str = "fastfnpickle") -> List[bytes]:
    """Run ``source`` as a script (``__main__``) with ``impl`` active; it calls ``emit(obj)``
    for each pickle (made by the module ``dumper``). Returns the pickles in order."""
    script = os.path.join(str(tmp_path), name)
    out = os.path.join(str(tmp_path), name + f".{len(os.listdir(str(tmp_path)))}.out")
    with open(script, "w") as f:
        f.write(textwrap.dedent("""
            import sys, fastfnpickle, importlib
            _OUT = open(sys.argv[1], "wb")
            def emit(obj):
                data = importlib.import_module(%r).dumps(obj)
                _OUT.write(len(data).to_bytes(8, "little") + data)
                _OUT.flush()
        """ % dumper) + textwrap.dedent(source))
    run_env = impl.env()
    run_env.update(env or {})
    proc = subprocess.run([sys.executable, script, out, *args], capture_output=True,
                          env=run_env, timeout=120)
    if proc.returncode:
        pytest.fail(f"producer failed:\n{proc.stderr.decode(errors='replace')}")
    pickles = []
    with open(out, "rb") as f:
        while True:
            head = f.read(8)
            if not head:
                break
            pickles.append(f.read(int.from_bytes(head, "little")))
    return pickles


def load_all(impl: Impl, pickles: List[bytes], check: str) -> str:
    """In one fresh interpreter, load ``pickles`` as the list ``objs`` and run ``check``."""
    payload = b"".join(len(p).to_bytes(8, "little") + p for p in pickles)
    return run_python(LOADER + textwrap.dedent(check), payload, env=impl.env())


LOADER = """
import pickle, sys
data = sys.stdin.buffer.read()
blobs, i = [], 0
while i < len(data):
    n = int.from_bytes(data[i:i + 8], "little")
    blobs.append(data[i + 8:i + 8 + n])
    i += 8 + n
def load(k):
    return pickle.loads(blobs[k])
"""


# --------------------------------------------------------------------------------------------
# 1. Distinct state, distinct classes

CLASSIFIER = """
THRESHOLD = float(sys.argv[2])

class Classifier:
    def predict(self, score):
        return "pos" if score > THRESHOLD else "neg"

emit(Classifier())
"""


def test_classes_differing_only_in_a_global_stay_apart(impl: Impl, tmp_path) -> None:
    low = produce(impl, tmp_path, CLASSIFIER, "0.2")
    high = produce(impl, tmp_path, CLASSIFIER, "0.9")
    out = load_all(impl, low + high, """
        a, b = load(0), load(1)
        assert type(a) is not type(b)
        print(a.predict(0.5), b.predict(0.5))
    """)
    assert out.split() == ["pos", "neg"]


ARRAY_ATTR = """
import numpy as np
scale = float(sys.argv[2])

class Model:
    weights = np.array([scale, scale])

    def total(self):
        return float(self.weights.sum())

emit(Model())
"""


def test_classes_differing_only_in_an_array_attribute_stay_apart(impl: Impl, tmp_path) -> None:
    pytest.importorskip("numpy")
    one = produce(impl, tmp_path, ARRAY_ATTR, "1")
    three = produce(impl, tmp_path, ARRAY_ATTR, "3")
    out = load_all(impl, one + three, "print(load(0).total(), load(1).total())")
    assert out.split() == ["2.0", "6.0"]


CLOSURE_STATIC = """
alpha = float(sys.argv[2])

def make_activation(a):
    def act(x):
        return x * a
    return act

class Layer:
    activation = staticmethod(make_activation(alpha))

emit(Layer)
"""


def test_classes_differing_only_in_a_closure_stay_apart(impl: Impl, tmp_path) -> None:
    a = produce(impl, tmp_path, CLOSURE_STATIC, "2")
    b = produce(impl, tmp_path, CLOSURE_STATIC, "5")
    out = load_all(impl, a + b, "print(load(0).activation(1), load(1).activation(1))")
    assert out.split() == ["2.0", "5.0"]


NESTED_DEFAULTS = """
k = int(sys.argv[2])

class Outer:
    class Inner:
        def get(self, value=k):
            return value

emit(Outer)
"""


def test_classes_differing_only_in_a_nested_class_default_stay_apart(impl: Impl,
                                                                      tmp_path) -> None:
    a = produce(impl, tmp_path, NESTED_DEFAULTS, "1")
    b = produce(impl, tmp_path, NESTED_DEFAULTS, "2")
    out = load_all(impl, a + b, "print(load(0).Inner().get(), load(1).Inner().get())")
    assert out.split() == ["1", "2"]


# --------------------------------------------------------------------------------------------
# 2. Updates reach the loader; a new class statement is a new class

UPDATES = """
class Counter:
    hits = 1

    def read(self):
        return self.hits

emit(Counter())
Counter.hits = 2
def bump(self, n):
    return self.hits + n
Counter.bump = bump
emit(Counter())
"""


def test_changed_class_updates_the_class_the_loader_holds(impl: Impl, tmp_path) -> None:
    before, after = produce(impl, tmp_path, UPDATES)
    out = load_all(impl, [before, after], """
        a = load(0)
        assert a.read() == 1 and not hasattr(a, "bump")
        b = load(1)
        assert type(a) is type(b) and isinstance(a, type(b))
        print(a.read(), a.bump(10), b.read())
    """)
    assert out.split() == ["2", "12", "2"]


def test_changed_class_keeps_its_id_and_bytes_differ(impl: Impl, tmp_path) -> None:
    before, after = produce(impl, tmp_path, UPDATES)
    assert before != after
    # The id travels in make_class's arguments: the same id in both pickles.
    ids = [_class_ids(p) for p in (before, after)]
    assert ids[0] == ids[1] and len(ids[0]) == 1


def _class_ids(data: bytes) -> List[str]:
    import pickletools

    found = []
    strings = [arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    for s in strings:
        head, _, tail = s.rpartition("-")
        if len(head) == 24 and tail.isdigit():
            found.append(s)
    return found


REDEFINED = """
class A:
    def who(self):
        return "first"

first = A()
emit(first)

class A:
    def who(self):
        return "second"

emit(A())

keep = A
class A:
    def who(self):
        return "second"

emit(A())
"""


def test_redefined_class_is_a_new_class_on_the_loader(impl: Impl, tmp_path) -> None:
    pickles = produce(impl, tmp_path, REDEFINED)
    out = load_all(impl, pickles, """
        a, b, c = load(0), load(1), load(2)
        assert type(a) is not type(b) and type(b) is not type(c)
        print(a.who(), b.who(), c.who())
    """)
    assert out.split() == ["first", "second", "second"]


SAME_CLASS = """
class Point:
    dims = 2

    def norm(self):
        return (self.x ** 2 + self.y ** 2) ** 0.5

p = Point()
p.x, p.y = 3, 4
emit(p)
"""


def test_two_producers_of_the_same_class_give_one_class(impl: Impl, tmp_path) -> None:
    a = produce(impl, tmp_path, SAME_CLASS, env={"PYTHONHASHSEED": "1"})
    b = produce(impl, tmp_path, SAME_CLASS, env={"PYTHONHASHSEED": "2"})
    assert a == b  # determinism: same program, same bytes, any hash seed
    out = load_all(impl, a + b, """
        p, q = load(0), load(1)
        assert type(p) is type(q)
        print(p.norm())
    """)
    assert out.split() == ["5.0"]


def test_producer_keeps_its_own_class_untouched_on_a_round_trip(impl: Impl) -> None:
    # The class that originated here is the newest version: loading a pickle of it gives it
    # back as it is (its methods are not swapped for copies with detached globals).
    ns: Dict[str, object] = {"__name__": "__main__"}
    exec("class C:\n    def m(self):\n        return LIMIT\nLIMIT = 1\n", ns)
    cls = ns["C"]
    method = cls.__dict__["m"]  # type: ignore[attr-defined]
    assert fastfnpickle.loads(impl.dumps(cls)) is cls
    assert cls.__dict__["m"] is method  # type: ignore[attr-defined]
    ns["LIMIT"] = 7
    assert cls().m() == 7  # type: ignore[operator]


# --------------------------------------------------------------------------------------------
# Chained pickling: loaded in B, pickled again in B, same bytes as A's

CHAIN = """
import dataclasses, enum

SCALE = 3

class Account:
    \"\"\"A bank account.\"\"\"

    currency = "EUR"
    limits = (10, 20)

    def __init__(self, owner):
        self.owner = owner

    @property
    def label(self):
        return f"{self.owner}:{self.currency}"

    @classmethod
    def empty(cls):
        return cls("nobody")

    def scaled(self, x):
        return x * SCALE

@dataclasses.dataclass
class Sample:
    ident: int
    tags: tuple = ()

class Color(enum.Enum):
    RED = 1
    GREEN = 2

emit(Account)
emit((Account, Account("ada"), Sample(1, ("a",)), Color.GREEN, Sample))
"""


def test_pickling_again_where_loaded_gives_the_same_bytes(impl: Impl, tmp_path) -> None:
    pickles = produce(impl, tmp_path, CHAIN)
    out = load_all(impl, pickles, f"""
        import fastfnpickle
        from fastfnpickle import _core_py
        use_python = {impl.name == "python"!r}
        for k in range(len(blobs)):
            obj = load(k)
            again = _core_py.dumps(obj) if use_python else fastfnpickle.dumps(obj)
            assert again == blobs[k], (k, len(again), len(blobs[k]))
        print("same")
    """)
    assert out.strip() == "same"


# --------------------------------------------------------------------------------------------
# 3. Bound methods stored on their own by-value class

SELF_METHODS = """
import enum

class Color(enum.Enum):
    RED = 1
    BLUE = 2

    @classmethod
    def default(cls):
        return cls.RED

Color._default = Color.default

class Registry:
    def handle(self, x):
        return ("handled", x)

Registry.instance = Registry()
Registry.handler = Registry.instance.handle

emit((Color, Registry))
"""


def test_bound_methods_of_the_class_itself_load(impl: Impl, tmp_path) -> None:
    pickles = produce(impl, tmp_path, SELF_METHODS)
    out = load_all(impl, pickles, """
        Color, Registry = load(0)
        assert Color._default() is Color.RED
        assert Registry.handler(3) == ("handled", 3)
        assert Registry.handler.__self__ is Registry.instance
        print("ok")
    """)
    assert out.strip() == "ok"


PYDANTIC = """
from pydantic import BaseModel, field_validator, model_validator

class User(BaseModel):
    name: str
    age: int

    @field_validator("name")
    @classmethod
    def strip_name(cls, v):
        return v.strip().title()

    @model_validator(mode="before")
    @classmethod
    def fill_age(cls, data):
        if isinstance(data, dict) and "age" not in data:
            data = dict(data, age=18)
        return data

emit(User)
emit(User(name="  ada lovelace ", age=36))
"""

PYDANTIC_CHECK = """
User = load(0)
ada = load(1)
assert type(ada) is User
assert ada.name == "Ada Lovelace" and ada.age == 36
bob = User(name=" bob ")
assert bob.name == "Bob" and bob.age == 18
try:
    User(name="x", age="old")
except Exception as exc:
    assert type(exc).__name__ == "ValidationError"
else:
    raise AssertionError("validation did not run")
print(ada.model_dump())
"""


def test_pydantic_v2_model_with_validators(impl: Impl, tmp_path) -> None:
    pytest.importorskip("pydantic")
    pickles = produce(impl, tmp_path, PYDANTIC)
    out = load_all(impl, pickles, PYDANTIC_CHECK)
    assert out.strip() == "{'name': 'Ada Lovelace', 'age': 36}"


def test_pydantic_v2_model_matches_cloudpickle(impl: Impl, tmp_path) -> None:
    # The same script pickled by cloudpickle loads with the same results.
    pytest.importorskip("pydantic")
    pytest.importorskip("cloudpickle")
    pickles = produce(impl, tmp_path, PYDANTIC)
    cp = produce(impl, tmp_path, PYDANTIC, dumper="cloudpickle")
    ours = load_all(impl, pickles, PYDANTIC_CHECK)
    theirs = load_all(impl, cp, PYDANTIC_CHECK)
    assert ours == theirs


# --------------------------------------------------------------------------------------------
# Through fastfnpickle.ProcessPoolExecutor

POOL = """
import multiprocessing
from fastfnpickle import ProcessPoolExecutor

class Counter:
    hits = 1

def remember(obj):
    import sys
    sys.__dict__.setdefault("_kept", []).append(obj)
    return obj.hits

def recall():
    import sys
    kept = sys.__dict__["_kept"]
    return [k.hits for k in kept], [k.extra() for k in kept], type(kept[0]) is type(kept[-1])

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        first = pool.submit(remember, Counter()).result()
        Counter.hits = 5
        Counter.extra = lambda self: "added"
        second = pool.submit(remember, Counter()).result()
        print(first, second, pool.submit(recall).result())
"""


def test_pool_worker_sees_class_updates(impl: Impl, tmp_path) -> None:
    script = os.path.join(str(tmp_path), "pool_main.py")
    with open(script, "w") as f:
        f.write(POOL)
    proc = subprocess.run([sys.executable, script], capture_output=True, env=impl.env(),
                          timeout=180)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().split(None, 2) == ["1", "5", "([5, 5], ['added', 'added'], True)\n"]


POOL_LOAD_ERROR = """
import multiprocessing
from fastfnpickle import ProcessPoolExecutor

class Fragile:
    def __reduce__(self):
        return (_explode, ("no such thing",))

def _explode(what):
    raise LookupError(what)

def task(obj):
    return 1

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        try:
            pool.submit(task, Fragile()).result()
        except Exception as exc:
            print(type(exc).__name__, "|", exc, "|", repr(exc.__cause__))
        print("still works:", pool.submit(task, 0).result())
"""


def test_pool_reports_a_task_load_error_with_its_cause(impl: Impl, tmp_path) -> None:
    script = os.path.join(str(tmp_path), "pool_err.py")
    with open(script, "w") as f:
        f.write(POOL_LOAD_ERROR)
    proc = subprocess.run([sys.executable, script], capture_output=True, env=impl.env(),
                          timeout=180)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    first, second = proc.stdout.decode().splitlines()
    assert first.startswith("UnpicklingError | the worker could not load the task: "
                            "LookupError: no such thing |")
    assert "LookupError: no such thing" in first.split("|", 2)[2]  # the remote traceback
    assert second == "still works: 1"
