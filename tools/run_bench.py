#!/usr/bin/env python3
"""The project's main job: ``python3 tools/run_bench.py [bench options]``.

Sets up ``.venvs/bench`` (Python 3.11 if the machine has it, else this python3) with the project
installed editable, the compiled core required, and the benchmark extras (cloudpickle, dill,
numpy, pytest-benchmark, matplotlib); then runs the side-by-side comparison
``python -m fastfnpickle bench`` and saves ``bench/results.json`` and ``bench/ratios.png``
unless other options are given. Stdlib only; reuses the test runner's helpers.
"""

import os
import subprocess
import sys
from typing import List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_tests as rt  # noqa: E402

VENV = os.path.join(rt.VENVS, "bench")
DEFAULT_ARGS = ["--json", os.path.join("bench", "results.json"),
                "--plot", os.path.join("bench", "ratios.png")]


def _interpreter() -> str:
    found = {i.minor: i for i in rt.discover()}
    preferred = found.get(rt.HEAVY) or (found[max(found)] if found else None)
    return preferred.executable if preferred is not None else sys.executable


def setup() -> Optional[str]:
    """The bench venv's python, created or refreshed; None if a step failed."""
    python = rt.venv_python(VENV)
    logfile = os.path.join(rt.VENVS, "logs", "bench-install.log")
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    env = rt.venv_env(VENV, {rt.REQUIRE_EXT: "1"})
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input", "install",
           "--progress-bar", "off"]
    with rt.file_lock(os.path.join(rt.VENVS, "bench.lock")):
        if not os.path.exists(python):
            rt.log("creating .venvs/bench ...")
            if not rt.run_logged([_interpreter(), "-m", "venv", VENV], logfile, rt.base_env()):
                return None
        rt.log("installing fastfnpickle[bench,plot] (compiled core required) ...")
        if not rt.run_logged(pip + ["-e", ".[bench,plot]"], logfile, env):
            return None
    return python


def main(argv: Sequence[str]) -> int:
    python = setup()
    if python is None:
        return 1
    args: List[str] = list(argv) or DEFAULT_ARGS
    cmd = [python, "-m", "fastfnpickle", "bench", *args]
    rt.log("$ " + " ".join(cmd))
    return subprocess.run(cmd, cwd=rt.ROOT, env=rt.venv_env(VENV)).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
