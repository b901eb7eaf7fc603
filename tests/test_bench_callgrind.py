"""``python -m fastfnpickle.bench.callgrind``: parsing, per-op arithmetic, the baseline check.

The unit tests need no valgrind; one slow test runs the tool for real on one tiny workload.
No counts are asserted as absolute numbers (they move with the code), only their handling.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import PYTHON_IMPL

from fastfnpickle.bench import callgrind as cg

LAMBDA = cg.CORE_BY_NAME["lambda"]
DICT = cg.CORE_BY_NAME["dict"]

CALLGRIND_FILE = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 1234
cmd:  python -c pass
part: 3
desc: Trigger: --dump-before=getppid

positions: line
events: Ir
summary: 374482
totals: 374482
"""


def _counts(dumps: int, loads: int) -> Dict[str, Dict[str, Dict[str, int]]]:
    return {"lambda": {cg.CHECKED_TARGET: {"dumps": dumps, "loads": loads}}}


def _baseline(dumps: int, loads: int, params: Any = None) -> Dict[str, Any]:
    return {"lambda": {"params": params or LAMBDA.params(),
                       "counts": {"dumps": dumps, "loads": loads}}}


def test_parse_totals() -> None:
    assert cg.parse_totals(CALLGRIND_FILE) == 374482
    only_summary = "\n".join(line for line in CALLGRIND_FILE.splitlines()
                             if not line.startswith("totals:"))
    assert cg.parse_totals(only_summary) == 374482
    with pytest.raises(ValueError, match="no totals"):
        cg.parse_totals("events: Ir\n")


def test_per_op_subtracts_the_empty_loop() -> None:
    # set-up, empty loop, dumps, entering the binding, loads
    assert cg.per_op([10**8, 900, 900 + 100 * 3000, 50, 900 + 100 * 1200], 100) == {
        "dumps": 3000, "loads": 1200}
    with pytest.raises(ValueError, match="expected 5 marked segments, got 1"):
        cg.per_op([10**8], 100)


def test_segment_files_are_read_in_order(tmp_path: Path) -> None:
    out = tmp_path / "cg.out"
    for k, total in enumerate([7, 1, 5, 2, 3], start=1):
        (tmp_path / f"cg.out.{k}").write_text(f"events: Ir\ntotals: {total}\n")
    out.write_text("events: Ir\ntotals: 999\n")  # after the last marker: not a segment
    assert cg._segment_counts(out) == [7, 1, 5, 2, 3]


def test_compare_within_and_beyond_tolerance() -> None:
    base = _baseline(10_000, 4_000)
    assert cg.compare(base, _counts(12_400, 4_100), [LAMBDA], 0.25) == ([], [])
    regressions, notes = cg.compare(base, _counts(12_600, 4_000), [LAMBDA], 0.25)
    assert len(regressions) == 1 and regressions[0].startswith("lambda dumps: 12,600")
    assert "+26.0%" in regressions[0]
    # The tolerance is the caller's choice.
    assert cg.compare(base, _counts(12_600, 4_000), [LAMBDA], 0.3)[0] == []
    regressions, _ = cg.compare(base, _counts(10_000, 6_000), [LAMBDA], 0.25)
    assert [r.split(":")[0] for r in regressions] == ["lambda loads"]
    # Much better than the baseline: not a failure, a hint.
    regressions, notes = cg.compare(base, _counts(5_000, 4_000), [LAMBDA], 0.25)
    assert regressions == [] and notes and "--update" in notes[0]


def test_compare_without_a_usable_baseline_fails() -> None:
    regressions, _ = cg.compare({}, _counts(1, 1), [LAMBDA], 0.25)
    assert regressions == ["lambda: no baseline (run with --update)"]
    stale = _baseline(10, 10, params={"workload": "lambda", "scale": 1.0, "ops": 7})
    regressions, _ = cg.compare(stale, _counts(10, 10), [LAMBDA], 0.25)
    assert len(regressions) == 1 and "baseline made with" in regressions[0]
    # Workloads not measured in this run are not judged.
    assert cg.compare(_baseline(1, 1), {}, [LAMBDA, DICT], 0.25) == ([], [])


def test_update_keeps_other_versions_and_workloads() -> None:
    data = {"schema": cg.SCHEMA, "versions": {
        "3.99": {"workloads": {"x": {}}},
        cg.minor_version(): {"workloads": {"dict": {"params": DICT.params(),
                                                    "counts": {"dumps": 1, "loads": 2}}}},
    }}
    new = cg.updated_baseline(data, cg.minor_version(), _counts(30, 40), [LAMBDA, DICT], "vg")
    assert new["versions"]["3.99"] == {"workloads": {"x": {}}}
    mine = new["versions"][cg.minor_version()]
    assert mine["workloads"]["lambda"] == {"params": LAMBDA.params(),
                                           "counts": {"dumps": 30, "loads": 40}}
    # Not measured this time: kept as it was.
    assert mine["workloads"]["dict"]["counts"] == {"dumps": 1, "loads": 2}
    assert mine["valgrind"] == "vg" and mine["target"] == cg.CHECKED_TARGET


def test_table_shows_both_targets_ratio_and_change() -> None:
    counts = {"lambda": {cg.CHECKED_TARGET: {"dumps": 11_000, "loads": 4_000},
                         "cloudpickle": {"dumps": 110_000, "loads": 8_000}}}
    text = cg.format_table(counts, [LAMBDA], list(cg.TARGETS), _baseline(10_000, 4_000))
    lines = text.splitlines()
    assert lines[0].split() == ["workload", "op", "ops", "fastfnpickle-cython", "cloudpickle",
                                "ratio", "baseline", "change"]
    assert lines[2].split() == ["lambda", "dumps", "100", "11,000", "110,000", "0.10x",
                                "10,000", "+10.0%"]
    assert lines[3].split()[-3:] == ["0.50x", "4,000", "+0.0%"]


def test_committed_baseline_covers_every_core_workload() -> None:
    path = cg.default_baseline_path()
    data = cg.load_baseline(path)
    entry = data["versions"]["3.11"]["workloads"]
    assert set(entry) == set(cg.CORE_BY_NAME)
    from fastfnpickle.bench import WORKLOADS

    for name, spec in cg.CORE_BY_NAME.items():
        assert spec.workload in WORKLOADS and WORKLOADS[spec.workload].missing() is None
        assert entry[name]["params"] == spec.params(), name
        assert entry[name]["counts"]["dumps"] > 0 and entry[name]["counts"]["loads"] > 0


def test_usage_errors(capsys: Any) -> None:
    assert cg.main(["--workloads", "lambda,nope", "--valgrind", "true"]) == 2
    assert "unknown workload(s) nope" in capsys.readouterr().err
    assert cg.main(["--targets", "cloudpickle", "--check", "--valgrind", "true"]) == 2
    assert "need the fastfnpickle-cython target" in capsys.readouterr().err
    assert cg.main(["--valgrind", "/no/such/valgrind"]) == 2
    assert "valgrind not found" in capsys.readouterr().err


def _have_compiled_core() -> bool:
    try:
        from fastfnpickle import _core  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.skipif(not _have_compiled_core(), reason="the compiled core is not built")
def test_real_run_update_then_check_catches_a_regression(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    env = PYTHON_IMPL.env()
    cmd = [sys.executable, "-m", "fastfnpickle.bench.callgrind", "--workloads", "lambda",
           "--targets", "fastfnpickle-cython", "--baseline", str(baseline), "--jobs", "1"]
    proc = subprocess.run(cmd + ["--update"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(baseline.read_text())
    counts = data["versions"][cg.minor_version()]["workloads"]["lambda"]["counts"]
    assert counts["dumps"] > 1000 and counts["loads"] > 1000, counts

    # Pretend the code used to be twice as fast: the check must fail and name the workload.
    for op in ("dumps", "loads"):
        counts[op] //= 2
    baseline.write_text(json.dumps(data))
    proc = subprocess.run(cmd + ["--check"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION" in proc.stdout
    assert "lambda dumps:" in proc.stdout and "lambda loads:" in proc.stdout
