"""The benchmark harness: ``python -m fastfnpickle bench`` and the ``bench/`` suites.

Not part of the library: nothing in ``fastfnpickle`` imports this package (only the
command-line dispatch in ``fastfnpickle.__main__`` does, when asked to run ``bench``).

- :mod:`.workloads`: what is pickled, and how a loaded result is checked;
- :mod:`.targets`: the serializers compared, behind one ``dumps``/``loads`` shape;
- :mod:`.runner`: preparing, checking and timing cases, and the command line;
- :mod:`.report`: the text table, Markdown and the chart;
- :mod:`.callgrind`: instruction counts under valgrind, checked against a baseline.
"""

from .runner import (
    Case,
    main,
    prepare_case,
    sample_indices,
    time_each,
    time_op,
)
from .targets import TARGET_NAMES, Target, resolve_targets
from .workloads import FAMILIES, WORKLOADS, Workload

__all__ = [
    "Case", "FAMILIES", "TARGET_NAMES", "Target", "WORKLOADS", "Workload", "main",
    "prepare_case", "resolve_targets", "sample_indices", "time_each", "time_op",
]
