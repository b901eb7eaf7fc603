"""Deterministic bytes: the same objects pickled in fresh interpreters under different
``PYTHONHASHSEED`` values (set and frozenset order changes with the seed) give identical bytes."""

import json
import pickle
from typing import Any, Dict

from conftest import load_in_subprocess, run_python

SEEDS = ("0", "1", "2", "3")

# Runs as __main__ in each child, so everything in it pickles by value.
SOURCE = """
import dataclasses, enum, json, typing
import fastfnpickle

WORDS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
FROZEN_WORDS = frozenset({"one", "two", "three", "four", "five", "six"})

def set_consts(x):
    # Literal sets in a membership test compile to frozenset constants.
    inner = lambda y: y in {"p", "q", "r", "s"}  # a nested code object with one, too
    return x in {"alpha", "beta", "gamma", "delta", "kappa"}, inner(x)

def uses_global_sets(x):
    return x in WORDS, x in FROZEN_WORDS

def make_closure():
    tags = {"red", "green", "blue", "cyan", "magenta", "yellow"}
    frozen = frozenset({"x", "y", "z", "w", "v"})
    mixed = {1, "a", 2.5, ("t", "u"), None}
    return lambda v: (v in tags, v in frozen, v in mixed)

class Config:
    KINDS = {"fast", "slow", "medium", "unknown", "other"}
    LIMITS = frozenset({"low", "high", "mid"})
    def check(self, kind):
        return kind in {"fast", "slow", "turbo"} and kind in self.KINDS

class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"

class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1

T = typing.TypeVar("T", bound=str)
K = typing.TypeVar("K", str, bytes)

class Box(typing.Generic[T]):
    def get(self) -> T:
        ...

@dataclasses.dataclass(order=True)
class PlainPoint:
    x: int
    label: str = "p"
    extra: list = dataclasses.field(default_factory=list)

# A frozenset default sits inside the dataclass Field object, one level below the class dict.
# Without a docstring, dataclass writes one holding the default's repr, whose order changes
# with the seed: the class itself would differ between the processes.
@dataclasses.dataclass(frozen=True)
class Point:
    "A point with tags."
    x: int
    tags: frozenset = frozenset({"p", "q", "r", "s", "t"})
    names: typing.Tuple[str, ...] = ("a", "b")

objects = {
    "set_consts": set_consts, "global_sets": uses_global_sets, "closure": make_closure(),
    "Config": Config, "Color": Color, "member": Color.GREEN, "flags": Perm.R | Perm.X,
    "T": T, "K": K, "Box": Box, "PlainPoint": PlainPoint, "Point": Point,
    # Instance state is ordinary data, written as the stdlib writes it (a set there keeps
    # its hash order), so this instance holds a one-element set.
    "point": Point(1, frozenset({"only"})),
    "lambda": lambda: sorted(WORDS),
}
out = {name: fastfnpickle.dumps(value).hex() for name, value in objects.items()}
out["__all__"] = fastfnpickle.dumps(objects).hex()
out["__twice__"] = fastfnpickle.dumps(objects) == fastfnpickle.dumps(objects)
print(json.dumps(out))
"""


def _pickles_under_seed(impl, seed: str) -> Dict[str, Any]:
    env = impl.env()
    env["PYTHONHASHSEED"] = seed
    return json.loads(run_python(SOURCE, env=env))


def test_identical_bytes_under_different_hash_seeds(impl) -> None:
    results = {seed: _pickles_under_seed(impl, seed) for seed in SEEDS}
    base = results[SEEDS[0]]
    assert base["__twice__"] is True
    differing = {
        seed: sorted(name for name in base if result[name] != base[name])
        for seed, result in results.items()
    }
    assert all(not names for names in differing.values()), differing

    # The bytes are also good: load them in a fresh interpreter under yet another seed.
    data = bytes.fromhex(base["__all__"])
    load_in_subprocess(data, """
        assert obj["set_consts"]("beta") == (True, False)
        assert obj["set_consts"]("q") == (False, True)
        assert obj["global_sets"]("zeta") == (True, False)
        assert obj["closure"]("cyan") == (True, False, False)
        assert obj["closure"](("t", "u")) == (False, False, True)
        assert obj["Config"]().check("fast") and not obj["Config"]().check("turbo")
        assert obj["Config"].KINDS == {"fast", "slow", "medium", "unknown", "other"}
        assert type(obj["Config"].LIMITS) is frozenset
        assert obj["member"] is obj["Color"].GREEN
        assert obj["flags"] == obj["flags"].__class__(5)
        assert obj["Box"].__parameters__ == (obj["T"],) and obj["T"].__bound__ is str
        assert obj["point"].x == 1 and obj["point"].tags == frozenset({"only"})
        assert obj["Point"](2).tags == frozenset("pqrst")
        assert obj["lambda"]()[0] == "alpha"
    """, impl)


def test_same_object_twice_in_one_process(impl) -> None:
    words = {"k%d" % i for i in range(50)}

    def f(x):
        return x in words and x in {"k1", "k2", "k3"}

    class Holder:
        members = frozenset(words)

        def method(self):
            return f

    payload = [f, Holder, Holder(), words]
    first = impl.dumps(payload)
    assert impl.dumps(payload) == first
    assert pickle.loads(first)[0]("k1") is True
