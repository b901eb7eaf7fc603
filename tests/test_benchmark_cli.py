"""``python -m fastfnpickle bench``: runs, checks pickles, and reports a well-formed result.

Structure only: no timing is asserted (shared, noisy machines).
"""

import io
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Tuple

import pytest
from conftest import PACKAGE_DIR, PYTHON_IMPL

from fastfnpickle import bench


def _bench(args: List[str], cwd: str, extra_path: str = "") -> Tuple[int, str, str]:
    env = PYTHON_IMPL.env()
    env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env["PYTHONPATH"]
    proc = subprocess.run([sys.executable, "-m", "fastfnpickle", "bench", *args], cwd=cwd,
                          capture_output=True, env=env, timeout=300)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _rows(result: Dict[str, Any], workload: str) -> Dict[str, Dict[str, Any]]:
    return {r["target"]: r for r in result["results"] if r["workload"] == workload}


def _paired(timing: Dict[str, Any], ref: Dict[str, Any]) -> float:
    return statistics.median(t / r for t, r in zip(timing["samples_s"], ref["samples_s"]))


def test_ratios_pair_the_samples_of_each_round() -> None:
    # A slow phase of the machine in rounds 3-5 for one target and 4-5 for the other: the
    # ratio of the overall medians says 3x, each round's own ratio says 1x (rounds 1, 2, 4, 5).
    from fastfnpickle.bench.runner import paired_ratio

    ours = {"samples_s": [1.0, 1.0, 3.0, 3.0, 3.0]}
    base = {"samples_s": [1.0, 1.0, 1.0, 3.0, 3.0]}
    assert paired_ratio(ours, base) == 1.0
    assert paired_ratio(ours, ours) == 1.0
    assert paired_ratio(ours, None) is None
    with pytest.raises(ValueError):  # rounds that do not line up are a bug, not a ratio
        paired_ratio(ours, {"samples_s": [1.0]})


def _assert_timing(timing: Any, repeats: int) -> None:
    assert set(timing) >= {"median_s", "min_s", "samples_s", "number",
                           "ratio_cloudpickle", "ratio_pickle"}
    assert len(timing["samples_s"]) == repeats
    assert 0 < timing["min_s"] <= timing["median_s"]
    assert isinstance(timing["number"], int) and timing["number"] >= 1


def test_quick_run_writes_json(tmp_path: Any) -> None:
    out = tmp_path / "out.json"
    code, stdout, stderr = _bench(["--quick", "--workloads", "lambda", "--json", str(out)],
                                  cwd=str(tmp_path))
    assert code == 0, stderr
    result = json.loads(out.read_text())

    assert result["schema"] == 1
    meta = result["meta"]
    assert meta["repeats"] == 3 and meta["protocol"] == 5 and meta["scale"] == 1.0
    assert meta["python"] == sys.version.split()[0]
    assert meta["command"] == "python -m fastfnpickle bench --quick --workloads lambda --json " \
        + str(out)

    targets = {t["name"]: t for t in result["targets"]}
    assert set(targets) == set(bench.TARGET_NAMES)
    assert targets["fastfnpickle-python"]["available"]
    assert [w["name"] for w in result["workloads"]] == ["lambda"]
    assert result["workloads"][0]["calls"] == 1

    rows = _rows(result, "lambda")
    available = {name for name, t in targets.items() if t["available"]}
    assert set(rows) == available
    for name in available - {"pickle"}:
        row = rows[name]
        assert row["status"] == "ok", row
        assert row["size"] > 0 and row["oob_bytes"] == 0
        for op in ("dumps", "loads"):
            _assert_timing(row[op], 3)
    # The stdlib cannot pickle a lambda from __main__: reported, not timed.
    assert rows["pickle"]["status"] == "n/a" and rows["pickle"]["dumps"] is None
    assert "lambda" in rows["pickle"]["note"]
    ours = rows["fastfnpickle-python"]["dumps"]
    assert ours["ratio_pickle"] is None
    if targets["cloudpickle"]["available"]:
        assert rows["cloudpickle"]["dumps"]["ratio_cloudpickle"] == 1.0
        assert ours["ratio_cloudpickle"] == pytest.approx(
            _paired(ours, rows["cloudpickle"]["dumps"]))
        assert rows["fastfnpickle-python"]["size"] != rows["cloudpickle"]["size"]
    else:
        assert ours["ratio_cloudpickle"] is None

    # Function workloads are also measured against the marshal floor and cloudpickle's size.
    assert ours["ratio_floor"] == pytest.approx(_paired(ours, rows["marshal-floor"]["dumps"]))
    assert rows["fastfnpickle-python"]["loads"]["ratio_floor"] > 0
    if targets["cloudpickle"]["available"]:
        assert rows["fastfnpickle-python"]["size_ratio_cloudpickle"] == pytest.approx(
            rows["fastfnpickle-python"]["size"] / rows["cloudpickle"]["size"])
        assert "Function workloads against the marshal floor" in stdout
    # Each target says how it loads; the fastfnpickle ones name their own twin.
    assert "_load_py" in targets["fastfnpickle-python"]["loads_via"]
    assert "fastfnpickle-python loads with pickle.loads" in stdout

    # The table on stdout, progress on stderr.
    assert "lambda: one small lambda from __main__" in stdout
    assert any(line.split()[:2] == ["dumps", "fastfnpickle-python"]
               for line in stdout.splitlines())
    assert "fresh interpreter" in stderr and "round 3/3" in stderr


USER_MODULE = '''
import threading

square = lambda x: x * x
lock = threading.Lock()
'''


def test_user_objects_and_failures(tmp_path: Any) -> None:
    (tmp_path / "userbench.py").write_text(textwrap.dedent(USER_MODULE))
    out = tmp_path / "user.json"
    code, stdout, stderr = _bench(
        ["--quick", "--object", "userbench:square", "--object", "userbench:lock",
         "--targets", "fastfnpickle-python,pickle", "--json", str(out), "--markdown"],
        cwd=str(tmp_path), extra_path=str(tmp_path))
    # A fastfnpickle target failing a workload (the lock) makes the exit status 1.
    assert code == 1, stderr
    result = json.loads(out.read_text())
    assert [w["name"] for w in result["workloads"]] == ["object:userbench:square",
                                                        "object:userbench:lock"]
    assert {t["name"] for t in result["targets"] if t["available"]} == {
        "fastfnpickle-python", "pickle"}

    square = _rows(result, "object:userbench:square")
    assert square["fastfnpickle-python"]["status"] == "ok"
    _assert_timing(square["fastfnpickle-python"]["loads"], 3)
    # userbench is importable: the stdlib pickles its lambda by reference... or fails on the
    # name "<lambda>"; either way it was tried and classified.
    assert square["pickle"]["status"] in ("ok", "n/a")
    lock = _rows(result, "object:userbench:lock")
    assert lock["fastfnpickle-python"]["status"] == "error"
    assert "lock" in lock["fastfnpickle-python"]["note"]
    assert lock["fastfnpickle-python"]["dumps"] is None
    assert lock["pickle"]["status"] == "n/a"

    assert stdout.startswith("- Python ")
    assert "| object:userbench:square | dumps | fastfnpickle-python |" in stdout
    assert "| object:userbench:lock | dumps | fastfnpickle-python | FAILED" in stdout


def test_usage_errors(capsys: Any) -> None:
    assert bench.main(["--workloads", "no-such-workload"]) == 2
    assert "no workload matches" in capsys.readouterr().err
    assert bench.main(["--targets", "pickle,nope"]) == 2
    assert "unknown target(s) nope" in capsys.readouterr().err
    assert bench.main(["--object", "no_colon"]) == 2
    assert "module:attr" in capsys.readouterr().err


def test_list_names_every_workload_and_target(capsys: Any) -> None:
    assert bench.main(["--list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert set(bench.WORKLOADS) <= listed
    assert set(bench.TARGET_NAMES) <= listed


def test_plot_or_clear_message(tmp_path: Any, capsys: Any) -> None:
    png = tmp_path / "ratios.png"
    args = ["--quick", "--quiet", "--no-verify", "--workloads", "closure",
            "--targets", "fastfnpickle-python,marshal-floor", "--plot", str(png)]
    from fastfnpickle.bench import report

    if report.have_matplotlib():
        assert bench.main(args) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert bench.main(args) == 2
        assert "--plot needs matplotlib" in capsys.readouterr().err
        assert not png.exists()


def test_workload_checks_reject_wrong_objects() -> None:
    # The correctness check must be able to fail, or a broken pickle would pass as "ok".
    scale = 0.01
    for workload in bench.WORKLOADS.values():
        if workload.missing() is not None:
            continue
        obj = workload.build(scale)
        good = {i: obj[i] for i in bench.sample_indices(len(obj))} if workload.per_call \
            else obj
        workload.check(good, scale)  # type: ignore[misc]
        wrong: Any = {0: None} if workload.per_call else None
        with pytest.raises((AssertionError, TypeError, AttributeError, ValueError)):
            workload.check(wrong, scale)  # type: ignore[misc]


def test_profile_prints_top_functions(capsys: Any) -> None:
    args = ["--profile", "fastfnpickle-python", "--workloads", "closure,dataclass-1k-list",
            "--scale", "0.01", "--min-time", "0.005"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    for header in ("== closure dumps", "== closure loads", "== dataclass-1k-list dumps"):
        assert header in out
    assert "Ordered by: internal time" in out
    # The twin's own reducer shows up in its profile.
    assert "reducer_override" in out


def _files_run_by_loads(target: Any, data: bytes) -> set:
    """Base names of the Python source files whose functions ran in ``target``'s loads."""
    seen = set()

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            seen.add(os.path.basename(frame.f_code.co_filename))

    with target.loading():
        sys.setprofile(profiler)
        try:
            f = pickle.loads(data)
        finally:
            sys.setprofile(None)
    assert f(2) == 30
    return seen


def test_each_fastfnpickle_target_loads_with_its_own_twin() -> None:
    # Issue 14: the pure target's loads column must time the pure loader, not whichever twin
    # the package bound at import.
    from fastfnpickle import _load_py, _rebuild

    found, _ = bench.resolve_targets(["fastfnpickle-cython", "fastfnpickle-python"])
    by_name = {t.name: t for t in found}
    before = dict(vars(_rebuild))
    closure = bench.WORKLOADS["closure"].build(1.0)
    pure = by_name["fastfnpickle-python"]
    data = pure.dumps(closure, None)
    assert "_load_py.py" in _files_run_by_loads(pure, data)
    with pure.loading():
        assert _rebuild.function is _load_py.function and _rebuild.code is _load_py.code
    assert dict(vars(_rebuild)) == before  # put back
    if "fastfnpickle-cython" in by_name:
        from fastfnpickle import _load

        compiled = by_name["fastfnpickle-cython"]
        assert "_load_py.py" not in _files_run_by_loads(compiled, data)
        with compiled.loading():
            assert _rebuild.function is _load.function
        assert dict(vars(_rebuild)) == before
    # An exception inside the binding restores the names too.
    with pytest.raises(RuntimeError):
        with pure.loading():
            raise RuntimeError("boom")
    assert dict(vars(_rebuild)) == before


def test_fresh_interpreter_check_uses_each_twin() -> None:
    from fastfnpickle.bench.targets import loads_for

    found, _ = bench.resolve_targets(["fastfnpickle-python"])
    data = found[0].dumps(bench.WORKLOADS["closure"].build(1.0), None)
    code = ("import sys, os; from fastfnpickle.bench.targets import loads_for; "
            "seen = set(); "
            "sys.setprofile(lambda fr, ev, a: seen.add(os.path.basename(fr.f_code.co_filename))"
            " if ev == 'call' else None); "
            "f = loads_for('fastfnpickle-python')(sys.stdin.buffer.read()); "
            "sys.setprofile(None); assert f(2) == 30; print('_load_py.py' in seen)")
    env = PYTHON_IMPL.env()
    env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "True"
    assert loads_for("pickle") is not loads_for("fastfnpickle-python")


def test_library_never_imports_the_harness() -> None:
    # Only the command-line dispatch may reach fastfnpickle.bench; the library must not.
    package = PACKAGE_DIR  # the package under test: its .pyx sources ship in the wheel too
    pattern = re.compile(r"(from\s+(\.|fastfnpickle\.?)\s*import\s+bench\b)|"
                         r"(from\s+(\.|fastfnpickle\.)bench\b)|(import\s+fastfnpickle\.bench\b)|"
                         r"(import_module\([^)]*bench)")
    offenders = []
    for name in sorted(os.listdir(package)):
        if name.endswith((".py", ".pyx", ".pxd")) and name != "__main__.py":
            with open(os.path.join(package, name), encoding="utf-8") as f:
                if pattern.search(f.read()):
                    offenders.append(name)
    assert offenders == []
    code = "import sys, fastfnpickle; print(any(m.startswith('fastfnpickle.bench') " \
           "for m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=PYTHON_IMPL.env(), timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_a_reader_that_leaves_early_ends_the_run_quietly(monkeypatch: Any) -> None:
    # `python -m fastfnpickle bench --list | head -1`: no BrokenPipeError traceback.
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert bench.main(["--list"]) == 141


def test_the_floor_loads_big_packages_in_a_fresh_interpreter() -> None:
    # The floor must be a correct pickler: its pickle of a function reaching
    # ``xml.etree.ElementTree`` through ``xml`` names that submodule for the loader to import.
    pytest.importorskip("numpy", reason="numpy (test extra) is not installed")
    from fastfnpickle.bench.targets import floor_dumps
    from fastfnpickle.bench.workloads import WORKLOADS

    workload = WORKLOADS["big-packages"]
    with workload.environment(1.0):
        data = floor_dumps(workload.build(1.0))
    code = textwrap.dedent("""
        import sys
        from fastfnpickle.bench.targets import floor_loads
        assert "xml.etree" not in sys.modules
        print(floor_loads(sys.stdin.buffer.read())([1.0, 2.0, 3.0]))
    """)
    env = PYTHON_IMPL.env()
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == '<report mean="2.0" norm="3.741657" />'


class _Probe:
    """Loads by running code that fails if an earlier load in the same interpreter ran it."""

    def __reduce__(self) -> Any:
        return (exec, ("import sys\n"
                       "assert 'fastfnpickle_probe' not in sys.modules, 'interpreter shared'\n"
                       "sys.modules['fastfnpickle_probe'] = sys\n",))


def test_each_pickle_is_checked_in_an_interpreter_of_its_own() -> None:
    # A pickle that loads only because another one imported what it needs first must not pass
    # (the floor's big-packages pickle did, behind fastfnpickle's): no two share a loader.
    from fastfnpickle.bench.runner import Case, Progress, _verify_in_subprocess
    from fastfnpickle.bench.targets import resolve_targets
    from fastfnpickle.bench.workloads import Workload

    target = resolve_targets(["pickle"])[0][0]
    cases = []
    for name in ("probe-a", "probe-b"):
        case = Case(Workload(name, "user", "", lambda s: None, None), target, None, 1.0)
        case.pickles = [pickle.dumps(_Probe(), 5)]
        case.buffers = [[]]
        cases.append(case)
    _verify_in_subprocess(cases, Progress(False))
    assert [(c.status, c.note) for c in cases] == [("ok", ""), ("ok", "")]
