"""TypeVar, ParamSpec and TypeVarTuple identity across processes, as for classes by value.

A TypeVar pickled by value travels under an id derived from everything it is made of (kind,
name, bound, constraints, variance, default, module), so:

- two producers' TypeVars that differ in any of those load as two objects;
- the same TypeVar pickled twice, or by two producers, loads as one object;
- a loaded TypeVar nothing refers to is freed (the registry holds weak references);
- a bound that reaches the TypeVar back (through a class by value) neither loops nor breaks it.

Producers are fresh interpreters running a script as ``__main__``; the loader is another.
"""

import gc
import pickle
import sys
import typing
import weakref
from typing import Any, List

import pytest
from conftest import PYTHON_IMPL, Impl
from test_class_identity import load_all, produce

from fastfnpickle import _class_registry, _rebuild

HAS_DEFAULTS = hasattr(typing, "NoDefault")  # PEP 696, 3.13+


def produce_both(impl: Impl, tmp_path: Any, source: str, *args: str) -> List[bytes]:
    """:func:`produce` with ``impl``; for the compiled core, also check that the pure-Python
    twin writes the same bytes."""
    pickles = produce(impl, tmp_path, source, *args)
    if impl.name != PYTHON_IMPL.name:
        assert produce(PYTHON_IMPL, tmp_path, source, *args) == pickles, "the twins differ"
    return pickles


# Two producers: the variable parts come from argv. Each pickle is made separately (emit), so
# one TypeVar in two pickles must load as one object through the registry, not the memo.
PRODUCER = """
import typing
T = typing.TypeVar("T", bound=eval(sys.argv[2]))
P = typing.ParamSpec("P", covariant=sys.argv[3] == "co")
Ts = typing.TypeVarTuple("Ts") if hasattr(typing, "TypeVarTuple") else None
K = typing.TypeVar("K", str, bytes)

class Box(typing.Generic[T]):
    pass

emit(T)
emit(T)
emit((P, Ts, K))
emit(Box)
"""


def test_two_producers(impl: Impl, tmp_path: Any) -> None:
    ints = produce_both(impl, tmp_path, PRODUCER, "int", "plain")
    strs = produce_both(impl, tmp_path, PRODUCER, "str", "co")
    again = produce(impl, tmp_path, PRODUCER, "int", "plain")
    assert again == ints, "one program, two runs: other bytes"
    assert ints[0] == ints[1]
    assert ints[0] != strs[0] and ints[2] != strs[2]
    out = load_all(impl, ints + strs, """
        import typing
        t_int, t_int_again, (p, ts, k), box_int = (load(i) for i in range(4))
        t_str, _, (p_co, ts_b, k_b), box_str = (load(i) for i in range(4, 8))
        # Different bounds, different TypeVars, each with its own bound.
        assert t_int is not t_str, "bound=int and bound=str loaded as one TypeVar"
        assert t_int.__bound__ is int and t_str.__bound__ is str
        assert t_int.__name__ == t_str.__name__ == "T" and t_int.__module__ == "__main__"
        # One TypeVar pickled twice: one object; a class generic in it uses that object.
        assert t_int_again is t_int and box_int.__parameters__ == (t_int,)
        assert box_str.__parameters__ == (t_str,) and box_int is not box_str
        # ParamSpec: variance tells them apart; same content from both producers: one object.
        assert p is not p_co and p_co.__covariant__ and not p.__covariant__
        assert k is k_b and k.__constraints__ == (str, bytes)
        if ts is not None:
            assert type(ts) is typing.TypeVarTuple and ts is ts_b
        print(len(blobs))
    """)
    assert out.split() == ["8"]


REPICKLE = """
import typing
T = typing.TypeVar("T", bound=int)
emit(T)
"""


def test_pickled_again_where_loaded_gives_the_producers_bytes(impl: Impl, tmp_path: Any) -> None:
    (data,) = produce_both(impl, tmp_path, REPICKLE)
    out = load_all(impl, [data], """
        import fastfnpickle
        t = load(0)
        print(fastfnpickle.dumps(t).hex())
    """)
    assert bytes.fromhex(out.strip()) == data


MODULES = """
import types, typing, fastfnpickle
mod = types.ModuleType("ffp_typevar_mod")
exec("import typing\\nT = typing.TypeVar('T', bound=int)\\n", mod.__dict__)
sys.modules[mod.__name__] = mod
fastfnpickle.register_pickle_by_value(mod)
T = typing.TypeVar("T", bound=int)
emit((T, mod.T))
"""


def test_module_is_part_of_the_identity(impl: Impl, tmp_path: Any) -> None:
    pickles = produce_both(impl, tmp_path, MODULES)
    out = load_all(impl, pickles, """
        main_t, mod_t = load(0)
        assert main_t is not mod_t
        assert main_t.__module__ == "__main__" and mod_t.__module__ == "ffp_typevar_mod"
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="infer_variance is 3.12+")
def test_infer_variance_is_part_of_the_identity(impl: Impl) -> None:
    inferred = typing.TypeVar("T", infer_variance=True)  # type: ignore[call-overload]
    plain = typing.TypeVar("T")
    a, b = pickle.loads(impl.dumps((inferred, plain)))
    assert a is inferred and b is plain  # this process holds both
    assert _class_registry.known_typevar_id(inferred) != _class_registry.known_typevar_id(plain)


DEFAULTS = """
import typing
T = typing.TypeVar("T", default=eval(sys.argv[2]))
N = typing.TypeVar("N", default=None)
Plain = typing.TypeVar("Plain")
P = typing.ParamSpec("P", default=[int, str])
Ts = typing.TypeVarTuple("Ts", default=typing.Unpack[tuple[int, ...]])
emit((T, N, Plain, P, Ts))
"""


@pytest.mark.skipif(not HAS_DEFAULTS, reason="TypeVar defaults (PEP 696) are 3.13+")
def test_defaults_are_kept_and_part_of_the_identity(impl: Impl, tmp_path: Any) -> None:
    ints = produce_both(impl, tmp_path, DEFAULTS, "int")
    strs = produce_both(impl, tmp_path, DEFAULTS, "str")
    out = load_all(impl, ints + strs, """
        import typing
        (t, n, plain, p, ts), (t_str, n_b, plain_b, p_b, ts_b) = load(0), load(1)
        assert t.has_default() and t.__default__ is int and t_str.__default__ is str
        assert t is not t_str
        assert n.has_default() and n.__default__ is None and n is n_b
        assert not plain.has_default() and plain.__default__ is typing.NoDefault
        assert plain is plain_b and p is p_b and ts is ts_b
        assert p.__default__ == [int, str]
        assert ts.__default__ == typing.Unpack[tuple[int, ...]]
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.skipif(HAS_DEFAULTS, reason="only before 3.13 is a default impossible")
def test_a_default_before_313_is_refused_by_name() -> None:
    args = (typing.TypeVar, "T", None, (), False, False, False, "old-id", "__main__", int)
    with pytest.raises(pickle.UnpicklingError, match="default.*3.13"):
        _rebuild.make_typevar(*args)


class _OldLayout:
    """Reduces as fastfnpickle wrote TypeVars before it carried the module and the default:
    eight arguments, ending with an id made of the name and a per-process count."""

    def __reduce__(self) -> Any:
        return (_rebuild.make_typevar,
                (typing.TypeVar, "Old", int, (), True, False, False, "__main__.Old:TypeVar-0"))


def test_the_old_eight_argument_layout_still_loads() -> None:
    data = pickle.dumps(_OldLayout())
    first = pickle.loads(data)
    assert type(first) is typing.TypeVar and first.__name__ == "Old"
    assert first.__bound__ is int and first.__covariant__
    assert pickle.loads(data) is first


def _registry_size() -> int:
    return len(_class_registry._TYPEVAR_BY_ID), len(_class_registry._ID_BY_TYPEVAR)


def test_a_loaded_typevar_is_freed(impl: Impl) -> None:
    gc.collect()
    before = _registry_size()

    def pickled() -> bytes:
        tv = typing.TypeVar("Freed", bound=float)
        return impl.dumps(tv)

    data = pickled()
    gc.collect()
    # The producer's TypeVar is gone (it was not kept by the dump side either), so this
    # process loads a new one; nothing refers to it but this weak reference, then.
    assert _registry_size() == before
    ref = weakref.ref(pickle.loads(data))
    gc.collect()
    assert ref() is None, "a loaded TypeVar outlived every reference to it"
    assert _registry_size() == before


def test_a_loaded_typevar_is_freed_in_a_fresh_loader(impl: Impl, tmp_path: Any) -> None:
    pickles = produce(impl, tmp_path, REPICKLE)
    out = load_all(impl, pickles, """
        import gc, weakref
        from fastfnpickle import _class_registry
        t = load(0)
        held = len(_class_registry._TYPEVAR_BY_ID)
        assert load(0) is t
        ref = weakref.ref(t)
        del t
        gc.collect()
        print(held, ref() is None, len(_class_registry._TYPEVAR_BY_ID),
              len(_class_registry._ID_BY_TYPEVAR))
    """)
    assert out.split() == ["1", "True", "0", "0"]


# A bound that reaches the TypeVar back: U's bound is a class by value whose state holds U.
CYCLE = """
import typing
T = typing.TypeVar("T")

class Node(typing.Generic[T]):
    pass

U = typing.TypeVar("U", bound=Node)
Node.kind_var = U
emit(U)
emit(Node)
"""


def test_a_bound_reaching_the_typevar_back(impl: Impl, tmp_path: Any) -> None:
    first = produce_both(impl, tmp_path, CYCLE)
    assert produce(impl, tmp_path, CYCLE) == first  # the ids do not depend on the run
    out = load_all(impl, first, """
        u, node = load(0), load(1)
        assert u.__bound__ is node and node.kind_var is u
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 695 syntax is 3.12+")
def test_a_typevar_in_its_own_bound_fails_cleanly(impl: Impl) -> None:
    # ``T: list[T]``: the bound holds T itself, which no TypeVar constructor can rebuild (a
    # TypeVar cannot be changed once made). Its digest stops at the reference to itself; the
    # pickle itself then fails as cloudpickle's does, with a PicklingError.
    ns: dict = {}
    exec("class Tree[T: list[T]]:\n    pass\n", ns)
    tv = ns["Tree"].__type_params__[0]
    with pytest.raises(pickle.PicklingError):
        impl.dumps(tv)
    assert _class_registry.known_typevar_id(tv) is not None  # its digest was taken


COMPARE = """
import typing
K = typing.TypeVar("K", str, bytes)
emit(K)
"""


def test_compared_with_cloudpickle(impl: Impl, tmp_path: Any) -> None:
    # cloudpickle keeps one producer's TypeVar apart from another's with a random id: the same
    # unchanged TypeVar from two producers loads as two objects there, as one here.
    pytest.importorskip("cloudpickle", reason="cloudpickle (test extra) is not installed")
    ours = produce(impl, tmp_path, COMPARE) + produce(impl, tmp_path, COMPARE)
    theirs = [produce(impl, tmp_path, COMPARE, dumper="cloudpickle")[0] for _ in range(2)]
    out = load_all(impl, ours + theirs, """
        print(load(0) is load(1), load(2) is load(3))
    """)
    assert out.split() == ["True", "False"]


def test_the_registry_is_no_cycle_of_its_own(impl: Impl) -> None:
    # A table holding weak references whose callbacks hold the table is a reference cycle:
    # it outlived the registry module's globals at exit, and the callbacks then ran there
    # against cleared globals ("Exception ignored" at the end of a test session).
    tv = typing.TypeVar("Cycle", bound=bytes)
    impl.dumps(tv)
    callback = _class_registry._ID_BY_TYPEVAR[id(tv)][0].__callback__
    held = list(getattr(callback, "args", ())) + list(getattr(callback, "keywords", {}).values())
    for table in (_class_registry._ID_BY_TYPEVAR, _class_registry._ID_BY_CLASS):
        assert not any(x is table for x in held)
