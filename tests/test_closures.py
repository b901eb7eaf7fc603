"""Closures: empty cells, rebound cells, (mutual) recursion, ``nonlocal``, cells shared between
closures, and standalone cell objects. Checks run in-process and in one fresh interpreter."""

import io
import pickle
import types
from typing import Any, Callable, Dict, Tuple

import pytest
from conftest import check_features_in_fresh_interpreter, load_in_subprocess, run_check

from fastfnpickle import PicklingRecursionError


def build_empty_cells() -> Any:
    def never_assigned():
        if False:
            x = 1  # noqa: F841

        def read():
            return x
        return read

    def assigned_later():
        def read():
            return y
        before = read
        y = "now set"  # noqa: F841
        return before

    def deleted():
        z = 1

        def read():
            return z  # noqa: F821  (deleted below: the cell is empty, which is the point)
        del z
        return read
    return {"never": never_assigned(), "later": assigned_later(), "deleted": deleted()}


CHECK_EMPTY_CELLS = """
r = obj["never"]
try:
    r.__closure__[0].cell_contents
except ValueError:
    pass
else:
    raise AssertionError("cell should be empty")
try:
    r()
except NameError as exc:
    assert "x" in str(exc)
else:
    raise AssertionError("reading an empty cell must raise NameError")
assert obj["later"]() == "now set"
try:
    obj["deleted"]()
except NameError:
    pass
else:
    raise AssertionError("deleted cell must stay empty")
"""


def build_rebound() -> Any:
    def outer():
        value = "first"

        def get():
            return value
        value = "second"
        return get

    def loop():
        fs = []
        for i in range(3):
            fs.append(lambda: i)  # all share the loop cell, which ends at 2
        return fs
    return {"get": outer(), "loop": loop()}


CHECK_REBOUND = """
assert obj["get"]() == "second"
assert [f() for f in obj["loop"]] == [2, 2, 2]
assert len({id(f.__closure__[0]) for f in obj["loop"]}) == 1
"""


def build_recursive() -> Any:
    def make_fact():
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        return fact

    def make_parity():
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)

        def is_odd(n):
            return False if n == 0 else is_even(n - 1)
        return is_even, is_odd
    even, odd = make_parity()
    return {"fact": make_fact(), "even": even, "odd_only": make_parity()[1]}


CHECK_RECURSIVE = """
fact = obj["fact"]
assert fact(5) == 120
assert fact.__closure__[0].cell_contents is fact
even = obj["even"]
assert even(10) is True and even(7) is False
odd = even.__closure__[0].cell_contents
assert odd.__name__ == "is_odd" and odd(7) is True
assert odd.__closure__[0].cell_contents is even
assert obj["odd_only"](3) is True
"""


def build_nonlocal() -> Any:
    def counter():
        count = 0

        def inc(step=1):
            nonlocal count
            count += step
            return count

        def get():
            return count

        def reset():
            nonlocal count
            count = 0
        return inc, get, reset
    inc, get, reset = counter()
    inc()
    inc(4)
    lone = counter()[0]
    return {"inc": inc, "get": get, "reset": reset, "lone": lone}


CHECK_NONLOCAL = """
inc, get, reset = obj["inc"], obj["get"], obj["reset"]
assert get() == 5  # the state at pickling time
assert inc(2) == 7 and get() == 7  # one shared cell after load
reset()
assert get() == 0 and inc() == 1
assert inc.__closure__[0] is get.__closure__[0] is reset.__closure__[0]
assert obj["lone"]() == 1 and obj["lone"]() == 2
assert obj["lone"].__closure__[0] is not inc.__closure__[0]
"""


def build_shared_cells() -> Any:
    def pair():
        data = []

        def push(v):
            data.append(v)

        def pop():
            return data.pop()
        return push, pop
    push, pop = pair()
    push("x")
    return {"push": push, "pop": pop}


CHECK_SHARED_CELLS = """
push, pop = obj["push"], obj["pop"]
assert push.__closure__[0] is pop.__closure__[0]
assert push.__closure__[0].cell_contents is pop.__closure__[0].cell_contents
push("y")
assert pop() == "y" and pop() == "x"
"""


def build_cells() -> Any:
    full = types.CellType([1, 2])
    empty = types.CellType()
    selfref = types.CellType()
    selfref.cell_contents = [selfref]

    def reader():
        return shared_value

    shared_value = {"k": "v"}
    closure_cell = reader.__closure__[0]
    return {"full": full, "empty": empty, "self": selfref, "reader": reader,
            "closure_cell": closure_cell}


CHECK_CELLS = """
import types
assert type(obj["full"]) is types.CellType and obj["full"].cell_contents == [1, 2]
try:
    obj["empty"].cell_contents
except ValueError:
    pass
else:
    raise AssertionError("empty standalone cell came back filled")
s = obj["self"]
assert s.cell_contents[0] is s
# A cell pickled both in a closure and on its own is one object after load.
assert obj["closure_cell"] is obj["reader"].__closure__[0]
assert obj["closure_cell"].cell_contents == {"k": "v"}
obj["closure_cell"].cell_contents = "changed"
assert obj["reader"]() == "changed"
"""


FEATURES: Dict[str, Tuple[Callable[[], Any], str]] = {
    "empty_cells": (build_empty_cells, CHECK_EMPTY_CELLS),
    "rebound": (build_rebound, CHECK_REBOUND),
    "recursive": (build_recursive, CHECK_RECURSIVE),
    "nonlocal": (build_nonlocal, CHECK_NONLOCAL),
    "shared_cells": (build_shared_cells, CHECK_SHARED_CELLS),
    "cells": (build_cells, CHECK_CELLS),
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_round_trip_in_process(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    run_check(check, pickle.loads(impl.dumps(build())))


def test_all_features_in_fresh_interpreter(impl) -> None:
    check_features_in_fresh_interpreter(impl, FEATURES)


def test_closure_cells_in_two_pickles_are_independent(impl) -> None:
    # Sharing is per pickle (memo): two dumps give two independent copies.
    inc = build_nonlocal()["inc"]
    a = pickle.loads(impl.dumps(inc))
    b = pickle.loads(impl.dumps(inc))
    assert a() == 6 and a() == 7 and b() == 6


def _cell_sharing_cases() -> Dict[str, Any]:
    def pair() -> Any:
        count = 0

        def get() -> int:
            return count

        def bump() -> Any:
            nonlocal count
            count += 1
            return get  # bump's closure holds get, which shares the cell

        return bump

    def lone(v: Any) -> Any:
        return lambda: v

    f = lone([1])
    return {
        # The first closure's cells are entered in the table only when a later one needs it.
        "shared through a closure value": pair(),
        "bare cell after its function": [f, f.__closure__[0]],
        "bare cell before its function": [f.__closure__[0], f],
        "two functions, one cell": [pair()(), pair()],
    }


@pytest.mark.parametrize("name", ["shared through a closure value", "bare cell after its function",
                                  "bare cell before its function", "two functions, one cell"])
def test_cell_table_twins_agree(impl, name: str) -> None:
    from conftest import PYTHON_IMPL
    obj = _cell_sharing_cases()[name]
    assert impl.dumps(obj) == PYTHON_IMPL.dumps(obj)
    assert impl.core.dumps(obj) == impl.dumps(obj)


def test_the_same_cell_twice_in_one_closure(impl) -> None:
    # Only a hand-made closure holds one cell twice; the compiled core must not defer its
    # table then. (Both twins refuse it today, with the same recursion error.)
    from conftest import PYTHON_IMPL

    def outer() -> Any:
        a = [0]

        def inner() -> Any:
            return a, b

        b = None
        return inner

    f = outer()
    cell = f.__closure__[0]
    twice = types.FunctionType(f.__code__, f.__globals__, "twice", None, (cell, cell))

    def outcome(dumps: Callable[[Any], bytes]) -> Any:
        try:
            return dumps(twice)
        except pickle.PicklingError as exc:
            return (type(exc), str(exc).splitlines()[0])

    expected = outcome(PYTHON_IMPL.dumps)
    assert outcome(impl.core.dumps) == outcome(impl.dumps) == expected


def _many_shared_cells(pairs: int) -> Any:
    """``pairs`` counters, each a (bump, get) pair over one cell, with every third counter's
    cell also in the list on its own; enough cells that the compiled core's table grows and
    rehashes several times within one pickle."""
    def counter(start: int) -> Any:
        count = start

        def bump() -> int:
            nonlocal count
            count += 1
            return count

        def get() -> int:
            return count
        return bump, get

    items: list = []
    for k in range(pairs):
        bump, get = counter(k)
        items.append(bump)
        if k % 3 == 0:
            items.append(get.__closure__[0])
        items.append(get)
    return items


CHECK_MANY_SHARED_CELLS = """
k = 0
i = 0
while i < len(obj):
    bump = obj[i]
    if k % 3 == 0:
        cell, get = obj[i + 1], obj[i + 2]
        assert cell is get.__closure__[0] is bump.__closure__[0], k
        i += 3
    else:
        get = obj[i + 1]
        i += 2
    assert get() == k and bump() == k + 1 and get() == k + 1, k
    assert bump.__closure__[0] is get.__closure__[0], k
    k += 1
assert k == PAIRS, k
"""


@pytest.mark.parametrize("pairs", [1, 7, 40, 1500])
def test_many_shared_cells_in_one_pickle(impl, pairs: int) -> None:
    from conftest import PYTHON_IMPL
    obj = _many_shared_cells(pairs)
    data = impl.dumps(obj)
    assert data == PYTHON_IMPL.dumps(obj)
    check = CHECK_MANY_SHARED_CELLS.replace("PAIRS", str(pairs))
    run_check(check, pickle.loads(data))
    if pairs == 1500:
        load_in_subprocess(data, check, impl)


def test_cell_table_follows_the_memo_of_a_reused_pickler(impl) -> None:
    # One pickler, several dump() calls: cells are shared across calls while the memo is, and
    # forgotten with it (clear_memo), also after a table big enough to be freed on clearing.
    from conftest import PYTHON_IMPL
    big = _many_shared_cells(200)
    small = _many_shared_cells(2)
    streams = []
    for core in (impl.core, PYTHON_IMPL.core):
        f = io.BytesIO()
        p = core.Pickler(f)
        p.dump(big)
        p.clear_memo()
        second = f.tell()
        p.dump(small[:2])  # bump and its cell; the next dump meets get, which shares the cell
        p.dump(small[2])
        p.clear_memo()
        third = f.tell()
        p.dump(small[2])
        streams.append((f.getvalue(), second, third))
    assert streams[0] == streams[1]
    data, second, third = streams[0]
    # An unpickler per memo: one pickler memo spans the middle two dumps.
    run_check(CHECK_MANY_SHARED_CELLS.replace("PAIRS", "200"), pickle.loads(data[:second]))
    u = pickle.Unpickler(io.BytesIO(data[second:third]))
    bump, cell = u.load()
    get = u.load()
    alone = pickle.loads(data[third:])
    assert get.__closure__[0] is cell is bump.__closure__[0]
    assert alone.__closure__[0] is not cell
    assert bump() == 1 and get() == 1 and alone() == 0


COUNTER_PAIRS = """
def make_counter(start):
    count = start

    def bump():
        nonlocal count
        count += 1
        return count

    def get():
        return count
    return bump, get

OBJ = [make_counter(10 * k) for k in range(100)]
"""

CHECK_COUNTER_PAIRS = """
seen = []
for bump, get in obj:
    seen.append((bump(), bump(), get()))
print(seen[0], seen[99], all(b2 == g for _, b2, g in seen))
"""


def test_closures_of_one_call_share_their_counter_in_a_fresh_interpreter(impl) -> None:
    # Made in a producer's __main__, loaded where it never ran. Side by side with cloudpickle:
    # both see bump() count; only here does get() see what bump() did (cloudpickle 3.1.3 gives
    # each function its own cells, so get() still reads the start value: silently stale).
    from _fresh import cloudpickle_roundtrip, roundtrip
    out = roundtrip(impl, COUNTER_PAIRS, CHECK_COUNTER_PAIRS)
    assert out == "(1, 2, 2) (991, 992, 992) True\n"
    theirs = cloudpickle_roundtrip(COUNTER_PAIRS, CHECK_COUNTER_PAIRS, impl)
    assert theirs.startswith("(1, 2, ")


def test_a_bare_cell_without_a_memo_names_fast_mode(impl) -> None:
    # Pickler.fast turns the memo off. A cell pickled on its own is filled through a reference
    # to itself, which without a memo writes it again; both twins now say so (they used to
    # fail inside pickle with a message about __reduce__'s tuple).
    def outer() -> Any:
        x = [1]
        return lambda: x

    cell = outer().__closure__[0]
    for obj in ([cell], [cell, cell], [types.CellType(2)]):
        p = impl.Pickler(io.BytesIO())
        p.fast = True
        with pytest.raises(pickle.PicklingError, match="Pickler.fast"):
            p.dump(obj)


def test_a_function_with_state_without_a_memo_names_fast_mode(impl) -> None:
    # A function's state is set through a reference to the function, which Pickler.fast (no
    # memo) writes again, without end. Both twins used to report only "too deeply nested".
    def outer() -> Any:
        x = [1]
        return lambda: x

    def with_default(a: int = 3) -> int:
        return a

    for obj in (outer(), with_default, [outer(), 1]):
        p = impl.Pickler(io.BytesIO())
        p.fast = True
        with pytest.raises(PicklingRecursionError, match="Pickler.fast") as info:
            p.dump(obj)
        assert isinstance(info.value, pickle.PicklingError)
    # Without fast mode the same limit keeps its own advice.
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(PicklingRecursionError, match="flatten the structure"):
        impl.Pickler(io.BytesIO()).dump(deep)


def test_a_chain_of_closures_too_deep_to_pickle_says_so(impl) -> None:
    # Composing in a loop nests each function in the next one's closure: past the recursion
    # limit both twins name it, whichever error the C pickler raised there.
    def compose(f: Callable[[int], int]) -> Callable[[int], int]:
        return lambda n: f(n) + 1

    fn: Callable[[int], int] = lambda n: n  # noqa: E731
    for _ in range(100_000):  # deep enough for 3.14's C stack limit too
        fn = compose(fn)
    with pytest.raises(PicklingRecursionError, match="flatten the structure"):
        impl.Pickler(io.BytesIO()).dump(fn)


def test_a_function_without_state_pickles_in_fast_mode(impl) -> None:
    # Fast mode still works for what needs no reference back: a lambda over nothing, whose
    # qualified name is its name (before 3.11 the code object has no qualified name, so any
    # other one is state set through a reference back).
    namespace: Dict[str, Any] = {"__name__": "generated_tasks"}
    exec("times_seven = lambda n: n * 7", namespace)
    buf = io.BytesIO()
    p = impl.Pickler(buf)
    p.fast = True
    p.dump(namespace["times_seven"])
    assert load_in_subprocess(buf.getvalue(), "print(obj(6))").strip() == "42"
