#!/usr/bin/env python3
"""The project's main job: ``python3 tools/run_bench.py [bench options]``.

Sets up ``.venvs/bench`` (Python 3.11 if the machine has it, else this python3) with the project
installed editable, the compiled core required, and the benchmark extras (cloudpickle, dill,
numpy, pytest-benchmark, matplotlib); then runs the side-by-side comparison
``python -m fastfnpickle bench`` and saves ``bench/results.json`` and ``bench/ratios.png``
unless other options are given. Stdlib only.
"""

import fcntl
import os
import subprocess
import sys
from typing import Dict, List, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import pythons  # noqa: E402  (tools/ is not a package)

VENV = os.path.join(ROOT, ".venvs", "bench")
PYTHON = os.path.join(VENV, "bin", "python")
LOG = os.path.join(ROOT, ".venvs", "logs", "bench-install.log")
PREFERRED = ["3.11", "3.12", "3.13", "3.10"]  # 3.11 first: the published numbers are from it
DEFAULT_ARGS = ["--json", os.path.join("bench", "results.json"),
                "--plot", os.path.join("bench", "ratios.png")]


def log(msg: str) -> None:
    print(msg, flush=True)


def _env(extra: Dict[str, str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTFNPICKLE_NO_EXTENSIONS", "FASTFNPICKLE_REQUIRE_EXTENSIONS",
                        "PYTHONHOME")}
    env["VIRTUAL_ENV"] = VENV
    env["PATH"] = os.path.dirname(PYTHON) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def _interpreter() -> str:
    for minor in PREFERRED:
        found = pythons.find(minor)
        if found:
            return found[0]
    return sys.executable


def _run_logged(cmd: List[str], env: Dict[str, str]) -> bool:
    """Output to the install log; on failure show its tail."""
    with open(LOG, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        with open(LOG) as fh:
            tail = fh.readlines()[-60:]
        log(f"command failed ({rc}): {' '.join(cmd)}")
        log("".join("  | " + line for line in tail).rstrip())
    return rc == 0


def setup() -> bool:
    """The bench venv, created or refreshed, with the compiled core built in REQUIRE mode."""
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    open(LOG, "w").close()
    with open(os.path.join(ROOT, ".venvs", "bench.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs must not build into one venv at once
        if not os.path.exists(PYTHON):
            interpreter = _interpreter()
            log(f"creating .venvs/bench with {interpreter} ...")
            if not _run_logged([interpreter, "-m", "venv", VENV], _env({})):
                return False
        log("installing fastfnpickle[bench,plot] (compiled core required) ...")
        return _run_logged([PYTHON, "-m", "pip", "--disable-pip-version-check", "--no-input",
                            "install", "--progress-bar", "off", "-e", ".[bench,plot]"],
                           _env({"FASTFNPICKLE_REQUIRE_EXTENSIONS": "1"}))


def main(argv: Sequence[str]) -> int:
    if not setup():
        return 1
    cmd = [PYTHON, "-m", "fastfnpickle", "bench", *(list(argv) or DEFAULT_ARGS)]
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, cwd=ROOT, env=_env({})).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
