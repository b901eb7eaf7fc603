"""Every reconstructor, every argument, values no pickler of ours writes: both load twins raise
the same ``pickle.UnpicklingError`` naming the reconstructor and the argument, and nothing
crashes the interpreter (issue 24: the compiled twin indexed pickle data unchecked).

The cases run in fresh interpreters under ``PYTHONMALLOC=debug`` (a heap overrun aborts there
instead of passing silently); see tests/_reconstructor_cases.py.
"""

import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest
from conftest import PYTHON_IMPL, Impl, _compiled_core

from fastfnpickle import _format

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "_reconstructor_cases.py")


def _outcomes(twin: str) -> Dict[str, str]:
    env = PYTHON_IMPL.env()
    env["PYTHONMALLOC"] = "debug"
    proc = subprocess.run([sys.executable, CASES, twin], capture_output=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, (
        f"the {twin} twin's reconstructor cases died with exit code {proc.returncode}:\n"
        + proc.stderr.decode(errors="replace")[-3000:])
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def outcomes() -> Dict[str, Dict[str, str]]:
    twins = {"python": _outcomes("python")}
    if _compiled_core() is not None:
        twins["cython"] = _outcomes("cython")
    return twins


def test_every_reconstructor_has_cases() -> None:
    sys.path.insert(0, HERE)
    import _reconstructor_cases
    assert set(_format.RECONSTRUCTORS) == set(_reconstructor_cases.FORMS)
    for name, forms in _reconstructor_cases.FORMS.items():
        assert sorted(len(f()) for f in forms) == sorted(
            len(sig) for sig in _format.SIGNATURES[name]), name


def test_bad_arguments_raise_unpicklingerror(outcomes: Dict[str, Dict[str, str]]) -> None:
    for twin, results in outcomes.items():
        wrong = {case: outcome for case, outcome in results.items()
                 if not outcome.startswith(("ok:", "_pickle.UnpicklingError:"))
                 # A module name the loading side lacks is not corruption.
                 and not (case.startswith("import_module/")
                          and outcome.startswith("builtins.ModuleNotFoundError"))}
        assert not wrong, f"{twin}: {json.dumps(wrong, indent=1)}"
        for case, outcome in results.items():
            # Messages about the version that made the pickle name the version instead.
            if outcome.startswith("_pickle.UnpicklingError:") and not (
                    "which needs Python" in outcome or "compiled by Python" in outcome):
                name = case.split("/")[0]
                assert f"fastfnpickle._rebuild.{name}" in outcome, (case, outcome)
        # Each valid form still works.
        valid = {c: o for c, o in results.items() if c.endswith("-valid")}
        assert all(o.startswith("ok:") or "which needs Python" in o
                   for o in valid.values()), valid


def test_twins_give_the_same_outcome(outcomes: Dict[str, Dict[str, str]]) -> None:
    if "cython" not in outcomes:
        pytest.skip("compiled core not built")
    compiled, pure = outcomes["cython"], outcomes["python"]
    assert compiled.keys() == pure.keys()
    differ = {case: (compiled[case], pure[case]) for case in compiled
              if compiled[case] != pure[case]}
    assert not differ, json.dumps(differ, indent=1)


# --- whole pickles, as an attacker would send them -------------------------------------------

def _global(name: str) -> bytes:
    return b"c" + _format.REBUILD_PATH.encode() + b"\n" + name.encode() + b"\n"


# fill_cell(None, ()): the pickle (46 bytes with protocol 4's framing) that segfaulted the
# compiled core.
FILL_CELL_OF_NONE = b"\x80\x02" + _global("fill_cell") + b"N)\x86R."


def _function_with_state(state: bytes) -> bytes:
    """A pickle calling the function state setter on a real lambda with ``state`` (pickle
    opcodes building a tuple)."""
    import fastfnpickle
    lam = fastfnpickle.dumps(lambda: 1, protocol=2)
    assert lam.endswith(b".")
    # lam leaves the function on the stack; build (function, state) around it.
    return (b"\x80\x02" + _global("function") + lam[2:-1] + state + b"\x86R.")


ATTACKS: Dict[str, Any] = {
    "fill-cell-of-none": (FILL_CELL_OF_NONE, "fill_cell: cell must be a cell, not None"),
    "state-doc-empty": (_function_with_state(b"(NNNN)t"),
                        "state field 'doc' must be a 1-tuple, not tuple of length 0"),
    "state-module-empty": (_function_with_state(b"(NNNNNNNNN)t"),
                           "state field 'module' must be a 1-tuple, not tuple of length 0"),
    "state-doc-str": (_function_with_state(b"(NNNNX\x03\x00\x00\x00doct"),
                      "state field 'doc' must be a 1-tuple, not str of length 3"),
    "state-module-str": (_function_with_state(b"(NNNNNNNNNX\x03\x00\x00\x00modt"),
                         "state field 'module' must be a 1-tuple, not str of length 3"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_pickles_are_refused(impl: Impl, name: str) -> None:
    data, message = ATTACKS[name]
    out = _load(impl, data)
    assert message in out, out


def _load(impl: Impl, data: bytes) -> str:
    env = impl.env()
    env["PYTHONMALLOC"] = "debug"
    proc = subprocess.run([sys.executable, "-c", (
        "import pickle, sys\n"
        "try:\n"
        "    pickle.loads(sys.stdin.buffer.read())\n"
        "except pickle.UnpicklingError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('loaded')\n")], input=data, capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode()


DEEP = """
import marshal, pickle, sys
from fastfnpickle import _format, _rebuild

class Call:
    def __init__(self, *args): self.args = args
    def __reduce__(self): return (_rebuild.code, self.args)

kind, depth = sys.argv[1], int(sys.argv[2])
base = compile("x = 1", "", "exec")
if kind == "tuples":
    nested = 1
    for _ in range(depth):
        nested = (nested,)
    code, tag = base.replace(co_consts=(nested, None)), _format.CODE_TAG_SETS
else:
    code, tag = base, _format.CODE_TAG
    for _ in range(depth):
        code = base.replace(co_consts=(code, None))
data = _format.seal(marshal.dumps(code.replace(co_filename="")))
sys.stdout.buffer.write(pickle.dumps(Call(tag, data, "f.py")))
"""


@pytest.mark.parametrize("kind", ["tuples", "code"])
def test_deeply_nested_constants_give_one_outcome(impl: Impl, kind: str) -> None:
    """Deeper than any compiled source nests: refused alike by both twins (the pure one used to
    reach the recursion limit where the compiled one loaded)."""
    over = _format.MAX_CONST_DEPTH + 50
    for depth, refused in ((_format.MAX_CONST_DEPTH - 10, False), (over, True), (900, True)):
        made = subprocess.run([sys.executable, "-c", DEEP, kind, str(depth)],
                              capture_output=True, env=PYTHON_IMPL.env(), timeout=60)
        assert made.returncode == 0, made.stderr.decode()
        out = _load(impl, made.stdout)
        if refused:
            assert "nests constants deeper than" in out or "nested too deeply" in out, (
                depth, out)
        else:
            assert out.strip() == "loaded", (depth, out)
