"""Self-tests of the fuzzing harness (run by the ``fuzz`` nox session before it fuzzes).

A harness that misfiles outcomes fuzzes nothing: these check that the payload finder and
marshal walker see exactly the code the seeds hold, that re-sealing and splicing keep a pickle
loadable, that the outcome rules classify the cases the docstring of ``harness.py`` names, and
that forged code is refused in the fuzzing process but run, and its crash reported, in a child.
"""

import marshal
import os
import pickle
import signal
import sys
import types
import zlib
from typing import Any, Dict, List

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(HERE), "tests"), HERE]

import _seeds  # noqa: E402
import harness  # noqa: E402
import sealed  # noqa: E402

import fastfnpickle  # noqa: E402


@pytest.fixture(scope="module")
def seeds() -> Dict[str, bytes]:
    return _seeds.seed_pickles(fastfnpickle.dumps, parity=False)


def _codes(code: types.CodeType) -> List[bytes]:
    out = [code.co_code]
    for const in code.co_consts:
        if type(const) is types.CodeType:
            out += _codes(const)
    return out


def test_payloads_and_bytecode_spans_are_exactly_the_seeds_code(seeds: Dict[str, bytes]) -> None:
    found = 0
    for name, data in seeds.items():
        for p in sealed.find_payloads(data):
            body = data[p.start + 4:p.end]
            assert zlib.crc32(body) == int.from_bytes(data[p.start:p.start + 4], "little"), name
            spans = sealed.bytecode_spans(body)
            assert spans is not None, name
            got = sorted(body[at + 4:end] for at, end in spans)
            assert got == sorted(_codes(marshal.loads(body))), name
            found += 1
    assert found > 20  # binary protocols carry them; protocols 0 and 2 write bytes otherwise


def test_resealed_payload_of_another_length_still_loads(seeds: Dict[str, bytes]) -> None:
    """Splicing in a payload of a different length fixes the opcode's length and the frame:
    a longer marshal stream with the same code (trailing bytes marshal ignores) loads."""
    data = seeds["00-lambda.p5"]
    p = sealed.find_payloads(data)[0]
    body = data[p.start + 4:p.end]
    for extra in (b"", b"\x00" * 300):  # 300 turns SHORT_BINBYTES into BINBYTES
        spliced = sealed.replace_payload(data, p, sealed.seal(body + extra))
        assert pickle.loads(spliced)(1) == 2
    assert sealed.reseal_all(data) == data


def test_bytecode_spans_refuse_garbage() -> None:
    assert sealed.bytecode_spans(b"\xe3" + b"\xff" * 40) is None
    assert sealed.bytecode_spans(b"") is None


def _raise_in(filename: str, exc: BaseException, globals_: Dict[str, Any]) -> BaseException:
    code = compile("def f(e):\n    raise e\n", filename, "exec")
    exec(code, globals_)
    try:
        globals_["f"](exc)
    except BaseException as caught:
        return caught
    raise AssertionError("not raised")


NAMES = {"_load.pyx", "_load_py.py", "_class_registry.py"}


def test_outcome_rules() -> None:
    module_globals = sys.modules[__name__].__dict__
    ours = "src/fastfnpickle/_load.pyx"
    # Allowed anywhere.
    for exc in (pickle.UnpicklingError("x"), ModuleNotFoundError("x"), MemoryError(),
                RecursionError()):
        assert harness.classify(_raise_in(ours, exc, dict(module_globals)), NAMES)[1] is None
    # Raised by fastfnpickle's own code: must have been UnpicklingError.
    fake = _raise_in(ours, ValueError("bad"), module_globals)
    assert harness.classify(fake, NAMES)[1] is not None
    # The stdlib (any frame that is not fastfnpickle's) refusing garbage: allowed...
    assert harness.classify(_raise_in(pickle.__file__, KeyError(1), module_globals),
                            NAMES)[1] is None
    # ... but never SystemError.
    assert harness.classify(_raise_in(pickle.__file__, SystemError("x"), module_globals),
                            NAMES)[1] is not None
    # Code from a pickle (globals that are no module's) raising anything, SystemError too.
    assert harness.classify(_raise_in("<string>", SystemError("unknown opcode"),
                                      {"__name__": "pickled"}), NAMES)[1] is None


def _forged() -> types.FunctionType:
    g: Dict[str, Any] = {"__name__": "not_a_module", "__builtins__": __builtins__}
    exec("def forged():\n    return 42\n", g)
    return g["forged"]  # type: ignore[no-any-return]


def test_guard_refuses_code_from_a_pickle_unless_it_is_a_seeds() -> None:
    fn = _forged()
    stats = harness.Stats(None)
    with pytest.raises(harness.ForgedCodeRun):
        with harness.Guard(harness.SeedCodes(), stats):
            fn()
    seeds = harness.SeedCodes.of([fn.__code__])
    with harness.Guard(seeds, stats):  # identical to a seed's code: runs
        assert fn() == 42
    # Equal as code objects (3.11's == skips the stack size) but not the seed's: refused.
    fn.__code__ = fn.__code__.replace(co_stacksize=fn.__code__.co_stacksize + 1)
    with pytest.raises(harness.ForgedCodeRun):
        with harness.Guard(seeds, stats):
            fn()
    with harness.Guard(harness.SeedCodes(), stats):  # library code runs
        assert os.path.join("a", "b") == "a/b"
    assert stats.counts["load:forged-code-refused"] == 2


def test_caller_reports_a_crash_of_forged_code_as_informational(tmp_path: Any) -> None:
    g: Dict[str, Any] = {"__name__": "not_a_module", "__builtins__": __builtins__,
                         "os": os, "signal": signal}
    exec("def crash():\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
         "def fine(x):\n    return x\n", g)
    stats = harness.Stats(None)
    caller = harness.Caller(harness.SeedCodes(), str(tmp_path), stats, _seeds.iter_functions,
                            harness.Guard(harness.SeedCodes(), stats))
    caller.offer([g["fine"], g["crash"], g["fine"]], b"input")
    caller.flush()
    assert stats.counts.get("call:forged-SIGSEGV") == 1
    assert stats.counts.get("call:made") == 2  # the duplicate of fine is called once
    assert [f for f in os.listdir(tmp_path) if f.startswith("call-info-SIGSEGV")]


def test_caller_finding_when_unmodified_seed_code_crashes(tmp_path: Any) -> None:
    g: Dict[str, Any] = {"__name__": "not_a_module", "__builtins__": __builtins__,
                         "os": os, "signal": signal}
    exec("def crash():\n    os.kill(os.getpid(), signal.SIGSEGV)\n", g)
    stats = harness.Stats(None)
    caller = harness.Caller(harness.SeedCodes.of([g["crash"].__code__]), str(tmp_path), stats,
                            _seeds.iter_functions, harness.Guard(harness.SeedCodes(), stats))
    caller.offer(g["crash"], b"input")
    with pytest.raises(harness.Finding):
        caller.flush()
    assert [f for f in os.listdir(tmp_path) if f.startswith("call-crash-seed-SIGSEGV")]


def test_corpus_names_carry_the_minor_only_with_a_code_tag(seeds: Dict[str, bytes]) -> None:
    lam = seeds["00-lambda.p5"]
    assert harness.carries_code_tag(lam)
    minor = f".py{sys.version_info[0]}{sys.version_info[1]}."
    assert minor in harness.corpus_name("A lambda!", lam, True)
    assert harness.corpus_name("x", b"data", False).startswith("x.")
