"""Benchmarks of the classes workloads (see ``python -m fastfnpickle bench --list``)."""

from typing import Any

import pytest

from fastfnpickle.bench import WORKLOADS

NAMES = [name for name, w in WORKLOADS.items() if w.family == "classes"]


@pytest.mark.parametrize("op", ["dumps", "loads"])
@pytest.mark.parametrize("workload", NAMES)
def test_classes(run_case: Any, workload: str, target: Any, op: str) -> None:
    run_case(workload, target, op)
