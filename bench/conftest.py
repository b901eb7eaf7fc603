"""pytest-benchmark suites over every target, built on ``fastfnpickle.bench``.

The workloads, targets and pickling steps are the ones ``python -m fastfnpickle bench`` uses;
this file only adapts them to the ``benchmark`` fixture. With ``--benchmark-disable`` (the CI
smoke run) workloads shrink to 1% of their size unless FASTFNPICKLE_BENCH_SCALE says otherwise.
"""

import os
import warnings
from typing import Any, Callable, Dict, Tuple

import pytest

from fastfnpickle import bench as fb

_TARGETS, _MISSING = fb.resolve_targets()
_BY_NAME = {t.name: t for t in _TARGETS}
_OBJECTS: Dict[str, Any] = {}
_CASES: Dict[Tuple[str, str], fb.Case] = {}


def _scale(config: Any) -> float:
    value = os.environ.get("FASTFNPICKLE_BENCH_SCALE")
    if value:
        return float(value)
    return 0.01 if config.getoption("benchmark_disable", default=False) else 1.0


@pytest.fixture(scope="session")
def scale(pytestconfig: Any) -> float:
    return _scale(pytestconfig)


@pytest.fixture(params=fb.TARGET_NAMES)
def target(request: Any) -> fb.Target:
    name = request.param
    if name not in _BY_NAME:
        pytest.skip(f"{name}: {_MISSING.get(name, 'unavailable')}")
    return _BY_NAME[name]


def _case(workload: fb.Workload, target: fb.Target, scale: float) -> fb.Case:
    key = (workload.name, target.name)
    case = _CASES.get(key)
    if case is None:
        absent = workload.missing()
        if absent is not None:
            pytest.skip(f"{workload.name} needs {absent}")
        obj = _OBJECTS.get(workload.name)
        if obj is None:
            obj = _OBJECTS[workload.name] = workload.build(scale)
        with workload.environment(scale), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case = _CASES[key] = fb.prepare_case(workload, target, obj, scale)
    if case.status == "n/a":
        pytest.skip(f"{target.name} cannot do {workload.name}: {case.note}")
    if case.status == "error":
        if target.name.startswith("fastfnpickle"):
            pytest.fail(f"{target.name} failed {workload.name}: {case.note}")
        pytest.skip(f"{target.name} fails on {workload.name}: {case.note}")
    return case


@pytest.fixture
def run_case(benchmark: Any, scale: float) -> Callable[[str, fb.Target, str], None]:
    """``run_case(workload_name, target, op)``: benchmark one operation of one case."""

    def run(workload_name: str, target: fb.Target, op: str) -> None:
        workload = fb.WORKLOADS[workload_name]
        case = _case(workload, target, scale)
        benchmark.group = f"{workload_name} {op}"
        benchmark.extra_info["size"] = case.size
        benchmark.extra_info["calls"] = case.calls
        with workload.environment(scale), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if op == "loads":
                with case.target.loading():  # each target loads with its own twin
                    benchmark(case.loads_op())
            elif workload.fresh is None or workload.per_call:
                benchmark(case.dumps_op())
            else:
                # Cold: every round pickles a fresh copy nobody has cached.
                one = fb.time_op(case.dumps_op(), 1)
                rounds = max(5, min(2000, int(1.0 / max(one, 1e-7))))
                callback = (lambda buf: None) if workload.out_of_band else None
                benchmark.pedantic(case.target.dumps,
                                   setup=lambda: ((workload.fresh(case.obj), callback), {}),
                                   rounds=rounds)

    return run
