#!/usr/bin/env python3
"""The project's test command: ``python3 tools/test.py [nox options] [-- pytest args]``.

Bootstraps a pinned nox into ``.venvs/nox`` (stdlib only until then), makes the Debian sid
root for Python 3.14/3.15 when the machine has no native ones (``tools/sidroot.sh``), runs the
nox matrix of ``noxfile.py`` (all sessions, in parallel one per CPU, unless nox options select
some: ``-s tests-3.12``, ``-t tests``, ``-t hostile`` for fuzz/asan/debug-3.14, ...), then
prints which interpreters ran and a pass/fail summary per session and per pytest pass (with
the sessions' notes: fuzzing throughput and findings per twin and mode, files run). Exits
non-zero if any session failed, or, on a full run, if any of the six interpreters (3.10-3.15)
did not run.

Examples::

    python3 tools/test.py                                   # everything (what .ci/run does)
    python3 tools/test.py -s tests-3.11 -- tests/test_api.py -x
    python3 tools/test.py -t tests                          # the six interpreters only
"""

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOX_PIN = "nox==2026.10.20"
NOX_VENV = os.path.join(ROOT, ".venvs", "nox")
NOX_PYTHON = os.path.join(NOX_VENV, "bin", "python")
REPORT = os.path.join(ROOT, ".nox", "report.json")
REPORTS = os.path.join(ROOT, ".nox", "reports")
VERSIONS = ["3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
SID_VERSIONS = ["3.14", "3.15"]
MAX_LISTED = 15  # failing tests listed per pytest pass

sys.path.insert(0, os.path.join(ROOT, "tools"))
import pythons  # noqa: E402  (tools/ is not a package)


def log(msg: str = "") -> None:
    print(msg, flush=True)


def fmt(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s" if seconds >= 60 else f"{seconds:.1f}s"


def bootstrap_nox() -> None:
    """``.venvs/nox`` with the pinned nox, made or remade when the pin changes."""
    stamp = os.path.join(NOX_VENV, "nox-pin.txt")
    try:
        with open(stamp) as fh:
            if fh.read() == NOX_PIN and os.path.exists(NOX_PYTHON):
                return
    except OSError:
        pass
    log(f"bootstrapping {NOX_PIN} into .venvs/nox ...")
    subprocess.run(["rm", "-rf", NOX_VENV], check=True)
    subprocess.run([sys.executable, "-m", "venv", NOX_VENV], check=True)
    subprocess.run([NOX_PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    NOX_PIN], check=True)
    with open(stamp, "w") as fh:
        fh.write(NOX_PIN)


def is_selecting(nox_args: Sequence[str]) -> bool:
    """Whether nox options pick sessions (otherwise every session runs: a full run)."""
    return any(a.startswith(("-s", "--session", "-e", "-t", "--tag", "-k", "-p", "--python"))
               or a.startswith("--sessions") for a in nox_args)


def ensure_sidroot(nox_args: Sequence[str]) -> Tuple[str, Optional[str]]:
    """Make the sid root up front when a selected session needs it (timed, as its own stage).
    Returns (summary line, error or None); the error is handed to the 3.14/3.15 sessions,
    which then fail saying why instead of retrying."""
    selecting = is_selecting(nox_args)
    needed = [v for v in SID_VERSIONS if pythons.find(v) is None]
    if not needed or (selecting and not any(v in " ".join(nox_args) for v in needed)):
        native = [v for v in SID_VERSIONS if v not in needed]
        why = "native " + ", ".join(native) if native else "not selected"
        return f"sid root: not needed ({why})", None
    start = time.monotonic()
    ready = subprocess.run([os.path.join(ROOT, "tools", "sidroot.sh"), "status"],
                           capture_output=True).returncode == 0
    log(f"Python {' and '.join(needed)}: no native interpreter; "
        f"{'reusing' if ready else 'making'} the Debian sid root (tools/sidroot.sh)")
    proc = subprocess.run([os.path.join(ROOT, "tools", "sidroot.sh"), "ensure"],
                          stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    took = time.monotonic() - start
    if proc.returncode != 0:
        reason = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        error = reason[-1] if reason else f"tools/sidroot.sh ensure exited {proc.returncode}"
        log("*" * 78)
        log(f"THE DEBIAN SID ROOT COULD NOT BE MADE: Python {', '.join(needed)} will FAIL")
        log(error)
        log("*" * 78)
        return f"sid root: FAILED after {fmt(took)}: {error}", error
    steps = [line.split("sidroot: ", 1)[1] for line in proc.stderr.splitlines()
             if " took " in line or " made in " in line]
    return (f"sid root: {'reused' if ready else 'made'} in {fmt(took)}"
            + (f" ({'; '.join(steps)})" if steps else "")), None


def junit_counts(path: Optional[str]) -> Tuple[Dict[str, int], List[str]]:
    counts = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    failures: List[str] = []
    if not path or not os.path.exists(path):
        return counts, failures
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return counts, failures
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        failed, errors = int(suite.get("failures", 0)), int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts["passed"] += tests - failed - errors - skipped
        counts["failed"] += failed
        counts["errors"] += errors
        counts["skipped"] += skipped
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failures.append(f"{case.get('classname')}::{case.get('name')}")
    return counts, failures


def summarize(sid_line: str, full_run: bool, wall: float, nox_rc: int) -> int:
    try:
        with open(REPORT) as fh:
            sessions = json.load(fh)["sessions"]
    except (OSError, ValueError, KeyError):
        log(f"no nox report at {os.path.relpath(REPORT, ROOT)} (nox exited {nox_rc}): "
            "nothing ran")
        return 1
    log("")
    log("=" * 78)
    log("summary")
    log(f"  {sid_line}")
    ran: Dict[str, str] = {}
    bad: List[str] = []
    for sess in sessions:
        name, result = sess["name"], sess["result"]
        detail: Dict[str, Any] = {}
        try:
            with open(os.path.join(REPORTS, f"{name}.json")) as fh:
                detail = json.load(fh)
        except (OSError, ValueError):
            pass
        python = detail.get("python", "?")
        source = detail.get("source", "")
        # nox calls a session that ends in session.error() "aborted": for us that is a failure.
        label = {"success": "PASS", "failed": "FAIL", "skipped": "SKIPPED",
                 "aborted": "FAIL"}.get(result, result.upper())
        took = sess.get("duration") or detail.get("seconds") or 0.0
        what = f"Python {python} ({source})" if detail else (sess.get("reason") or "")
        log(f"  {name:<13} {label:<7} {what}  {fmt(float(took))}")
        if sess.get("reason") and detail:
            log(f"      {sess['reason']}")
        for step in detail.get("passes", []):
            counts, failures = junit_counts(step.get("junit"))
            extra = ""
            if step.get("junit") and not os.path.exists(step["junit"]):
                extra = "  (no junit report: pytest did not finish)"
            elif step.get("junit"):
                # junit counts test cases; pytest's own line also counts failed subtests.
                extra = (f"  cases: {counts['passed']} passed, "
                         f"{counts['failed'] + counts['errors']} failed, "
                         f"{counts['skipped']} skipped")
            log(f"      {step['name']:<40} {fmt(step['seconds']):>8}  {step['status']}{extra}")
            for failure in failures[:MAX_LISTED]:
                log(f"          failed {failure}")
            if len(failures) > MAX_LISTED:
                log(f"          ... and {len(failures) - MAX_LISTED} more")
        for note in detail.get("notes", []):  # fuzz throughput and findings, files run
            log(f"      {note}")
        if detail.get("skipped"):
            log(f"      !!! {detail['skipped']}")
        if name.startswith("tests-"):
            ran[name[len("tests-"):]] = label
        if result != "success":  # a skipped session did not check anything either
            bad.append(name)
    missing = [v for v in VERSIONS if v not in ran]
    log("  interpreters: " + ", ".join(f"{v} {ran[v]}" for v in VERSIONS if v in ran)
        + (f"; NOT RUN: {', '.join(missing)}" if missing and full_run else ""))
    log(f"  wall time: {fmt(wall)}")
    if bad:
        log(f"FAILED: {', '.join(bad)}")
    if full_run and missing:
        log(f"FAILED: interpreter(s) not run: {', '.join(missing)}")
    ok = not bad and not (full_run and missing) and nox_rc == 0
    log("OK" if ok else "NOT OK")
    return 0 if ok else 1


def main(argv: Sequence[str]) -> int:
    started = time.monotonic()
    args = list(argv)
    nox_args, posargs = (args[:args.index("--")], args[args.index("--"):]) if "--" in args \
        else (args, [])
    if any(a in ("-h", "--help", "-l", "--list") for a in nox_args):
        bootstrap_nox()
        return subprocess.run([NOX_PYTHON, "-m", "nox", *nox_args], cwd=ROOT).returncode
    full_run = not is_selecting(nox_args)
    bootstrap_nox()
    sid_line, sid_error = ensure_sidroot(nox_args)
    env = dict(os.environ)
    if sid_error:
        env["FASTFNPICKLE_SIDROOT_ERROR"] = sid_error
    os.makedirs(REPORTS, exist_ok=True)
    for stale in [REPORT] + [os.path.join(REPORTS, f) for f in os.listdir(REPORTS)]:
        if os.path.isfile(stale):  # a report from an earlier run must not read as this one's
            os.remove(stale)
    parallel: List[str] = []
    if full_run and not any(a.startswith(("-j", "--parallel")) for a in nox_args):
        # Two cores run two sessions at once (pytest itself is one process); each session's
        # output is printed as one block when it ends. Builds in src/ take turns (a lock).
        parallel = ["--parallel", "auto"]
    cmd = [NOX_PYTHON, "-m", "nox", "--report", REPORT, "--error-on-missing-interpreters",
           *parallel, *nox_args, *posargs]
    log("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    return summarize(sid_line, full_run, time.monotonic() - started, rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
