"""``python -m fastfnpickle.bench.callgrind``: instructions per operation, under valgrind.

Wall time on a shared machine moves by tens of percent from run to run; the number of
instructions an operation executes does not. This runs the core workloads (small counts) for
fastfnpickle's compiled core and for cloudpickle, each workload and target in its own child
interpreter under ``valgrind --tool=callgrind``, and prints instructions per operation side by
side. ``--check`` compares fastfnpickle's counts with the committed baseline
(``callgrind_baseline.json`` beside this module, shipped as package data so an installed wheel
has it too; one entry per Python minor version) and exits 1 naming every workload that grew
beyond the tolerance; ``--update`` rewrites this version's entry.

How a count is made: the child builds the workload, pickles and loads it once (warm-up and
check), then runs, between markers, ``ops`` empty loop turns, ``ops`` dumps and ``ops`` loads.
Each marker is a call to ``os.getppid()``, and ``--dump-before=getppid`` makes callgrind write
and reset its counters there, so every segment is counted alone: interpreter start-up and set-up
never enter the numbers. Per operation = (segment - empty segment) / ops. The child runs with
``PYTHONHASHSEED=0``, the garbage collector off and leaves with ``os._exit`` (no finalization), so
the same code gives the same counts to within a fraction of a percent.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

SCHEMA = 1
DEFAULT_TOLERANCE = 0.25
TARGETS = ("fastfnpickle-cython", "cloudpickle")
# Not run by default: the least work any by-value function pickler must do (bench/targets.py),
# for reading fastfnpickle's counts against it; it only measures the function workloads.
OPTIONAL_TARGETS = ("marshal-floor",)
CHECKED_TARGET = "fastfnpickle-cython"
MARKER = "getppid"
BASELINE_NAME = "callgrind_baseline.json"


class Spec:
    """One core workload: which bench workload, at what scale, how many ops per segment."""

    def __init__(self, name: str, workload: str, scale: float, ops: int, what: str) -> None:
        self.name = name
        self.workload = workload
        self.scale = scale
        self.ops = ops
        self.what = what

    def params(self) -> Dict[str, Any]:
        """What a baseline count depends on besides the code: compared before the counts."""
        return {"workload": self.workload, "scale": self.scale, "ops": self.ops}


# Small counts: the whole check (two children per workload) takes a few minutes under valgrind.
CORE: Tuple[Spec, ...] = (
    Spec("lambda", "lambda", 1.0, 100, "one small lambda, cold code"),
    Spec("closure", "closure", 1.0, 100, "a closure with 3 cells, cold code"),
    Spec("global-refs", "global-refs", 1.0, 100,
         "a function reading module globals, a helper function and a module, cold code"),
    Spec("same-fn-calls", "same-fn-10k-calls", 0.02, 5, "the same function in 200 dumps calls"),
    Spec("distinct-lambdas", "lambdas-10k", 0.02, 5, "200 distinct exec'd lambdas in one list"),
    Spec("distinct-closures", "closures-10k", 0.02, 5,
         "200 closures of 2 cells, each from its own factory, in one list"),
    Spec("big-packages", "big-packages", 1.0, 50,
         "a function using numpy, json and xml.etree, cold code"),
    Spec("numpy-closure-oob", "numpy-closure-oob", 1.0, 20,
         "a closure over an 8 MB array, buffers out of band, cold code"),
    Spec("dynamic-class", "dynamic-class", 1.0, 50, "a __main__ class with methods"),
    Spec("dataclass-list", "dataclass-1k-list", 0.2, 10,
         "200 __main__ dataclass instances in one list"),
    Spec("plain-objects", "plain-objects-100k", 0.01, 10,
         "1,000 instances of an importable plain class"),
    Spec("dict", "dict-100k", 0.01, 20, "a dict of 1,000 str -> float"),
)
CORE_BY_NAME = {s.name: s for s in CORE}


# --------------------------------------------------------------------------------------------
# The child: runs inside valgrind

def _mark() -> None:
    os.getppid()  # callgrind dumps and resets its counters on entering getppid


def _child(argv: Sequence[str]) -> None:
    """``workload scale ops target``: set up, then the marked segments; see the module doc."""
    import gc

    gc.disable()
    name, scale_text, ops_text, target_name = argv
    scale, ops = float(scale_text), int(ops_text)
    from .runner import _discard, prepare_case
    from .targets import resolve_targets
    from .workloads import WORKLOADS

    workload = WORKLOADS[name]
    targets, missing = resolve_targets([target_name])
    if not targets:
        raise SystemExit(f"target {target_name} unavailable: {missing.get(target_name)}")
    target = targets[0]
    with workload.environment(scale):
        obj = workload.build(scale)
        case = prepare_case(workload, target, obj, scale)
        if case.status != "ok":
            raise SystemExit(f"{target_name} on {name}: {case.status}: {case.note}")
        fresh = workload.fresh
        dumps_op: Callable[[], None] = case.dumps_op()
        if fresh is not None and not workload.per_call:
            # Cold workloads: each dumps gets a copy with new code objects, made here.
            pool = [fresh(obj) for _ in range(ops + 1)]
            dumps = target.dumps
            callback = _discard if workload.out_of_band else None

            def cold_dumps() -> None:
                dumps(pool.pop(), callback)
            dumps_op = cold_dumps
        loads_op = case.loads_op()
        dumps_op()
        with target.loading():
            loads_op()

        def noop() -> None:
            return None

        turns = range(ops)
        _mark()                         # end of start-up and set-up
        for _ in turns:
            noop()
        _mark()                         # segment 2: the empty loop
        for _ in turns:
            dumps_op()
        _mark()                         # segment 3: dumps
        with target.loading():
            _mark()                     # segment 4: entering the load binding
            for _ in turns:
                loads_op()
            _mark()                     # segment 5: loads
    sys.stdout.flush()
    os._exit(0)


# --------------------------------------------------------------------------------------------
# Reading callgrind's output

def parse_totals(text: str) -> int:
    """The instruction count of one callgrind output file (its ``totals:`` line)."""
    summary = None
    for line in text.splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:"):
            summary = int(line.split()[1])
    if summary is None:
        raise ValueError("no totals: or summary: line in callgrind output")
    return summary


def per_op(segments: Sequence[int], ops: int) -> Dict[str, int]:
    """Instructions per dumps and loads op from the counts of the marked segments.

    ``segments`` are the counts of the dumps triggered by the markers, in order: set-up, the
    empty loop, dumps, entering the load binding, loads.
    """
    if len(segments) != 5:
        raise ValueError(f"expected 5 marked segments, got {len(segments)}: the child did not "
                         f"reach every marker, or callgrind did not stop at {MARKER}()")
    empty = segments[1]
    return {"dumps": max(0, round((segments[2] - empty) / ops)),
            "loads": max(0, round((segments[4] - empty) / ops))}


def _segment_counts(outfile: Path) -> List[int]:
    # Dumps at a trigger go to <outfile>.1, .2, ...; the file without a suffix holds what ran
    # after the last one (nothing measured: the child leaves with os._exit).
    parts = []
    k = 1
    while True:
        path = Path(f"{outfile}.{k}")
        if not path.exists():
            break
        parts.append(parse_totals(path.read_text(errors="replace")))
        k += 1
    return parts


def measure(spec: Spec, target: str, valgrind: str, workdir: Path,
            python: str = sys.executable) -> Dict[str, int]:
    """Run one child under callgrind; instructions per dumps and loads op."""
    outfile = workdir / f"cg-{spec.name}-{target}.out"
    env = _child_env()
    child = [python, "-c", "import sys; from fastfnpickle.bench.callgrind import _child; "
             "_child(sys.argv[1:])", spec.workload, repr(spec.scale), str(spec.ops), target]
    cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={outfile}",
           f"--dump-before={MARKER}", "--dump-line=no", "--dump-instr=no", *child]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=900)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        tail = [line for line in err if not line.startswith("==")][-3:] or err[-3:]
        raise RuntimeError(f"{spec.name} with {target}: the child failed "
                           f"(exit {proc.returncode}): " + " | ".join(tail))
    return per_op(_segment_counts(outfile), spec.ops)


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    # The compiled core is what is measured, whatever this process was told to use.
    env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
    return env


def _warm_bytecode(python: str) -> None:
    # Import everything once outside valgrind so no child pays for writing .pyc files (the
    # first child would, the others not).
    code = ("import cloudpickle, fastfnpickle, fastfnpickle.bench.callgrind, "
            "fastfnpickle.bench.runner")
    subprocess.run([python, "-c", code], env=_child_env(), capture_output=True, timeout=300)


# --------------------------------------------------------------------------------------------
# The baseline

def minor_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def default_baseline_path() -> Path:
    """The baseline beside this module: package data, so the same lookup works in an editable
    install (where ``--update`` writes the file to commit) and in an installed wheel."""
    return Path(__file__).resolve().with_name(BASELINE_NAME)


def load_baseline(path: Path) -> Dict[str, Any]:
    if not path.exists():
        return {"schema": SCHEMA, "versions": {}}
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: unknown schema {data.get('schema')!r}")
    return data


def compare(baseline: Dict[str, Any], counts: Dict[str, Dict[str, Dict[str, int]]],
            specs: Sequence[Spec], tolerance: float) -> Tuple[List[str], List[str]]:
    """``(regressions, notes)``: each regression names a workload and op whose compiled-core
    count exceeds the baseline by more than ``tolerance`` (0.25 = +25%), or that has no usable
    baseline; notes mention large improvements (time to ``--update``)."""
    regressions: List[str] = []
    notes: List[str] = []
    for spec in specs:
        entry = baseline.get(spec.name)
        now = counts.get(spec.name, {}).get(CHECKED_TARGET)
        if now is None:
            continue
        if entry is None:
            regressions.append(f"{spec.name}: no baseline (run with --update)")
            continue
        if entry.get("params") != spec.params():
            regressions.append(f"{spec.name}: baseline made with {entry.get('params')}, "
                               f"now {spec.params()} (run with --update)")
            continue
        for op in ("dumps", "loads"):
            base = entry["counts"][op]
            change = (now[op] - base) / base if base else 0.0
            if change > tolerance:
                regressions.append(f"{spec.name} {op}: {now[op]:,} instructions per op, "
                                   f"baseline {base:,} ({change:+.1%}, tolerance "
                                   f"{tolerance:+.0%})")
            elif change < -tolerance:
                notes.append(f"{spec.name} {op}: {change:+.1%} below the baseline; "
                             "consider --update")
    return regressions, notes


def updated_baseline(data: Dict[str, Any], version: str,
                     counts: Dict[str, Dict[str, Dict[str, int]]],
                     specs: Sequence[Spec], valgrind_version: str) -> Dict[str, Any]:
    """``data`` with this version's entries for ``specs`` replaced by ``counts``."""
    versions = dict(data.get("versions", {}))
    entry = dict(versions.get(version, {}))
    workloads = dict(entry.get("workloads", {}))
    for spec in specs:
        now = counts.get(spec.name, {}).get(CHECKED_TARGET)
        if now is not None:
            workloads[spec.name] = {"params": spec.params(), "counts": dict(now)}
    entry.update({"python": sys.version.split()[0], "valgrind": valgrind_version,
                  "target": CHECKED_TARGET, "workloads": workloads})
    versions[version] = entry
    return {"schema": SCHEMA,
            "about": "Instructions per op of the compiled core under callgrind; written by "
                     "python -m fastfnpickle.bench.callgrind --update",
            "versions": dict(sorted(versions.items()))}


# --------------------------------------------------------------------------------------------
# Command line

def format_table(counts: Dict[str, Dict[str, Dict[str, int]]], specs: Sequence[Spec],
                 targets: Sequence[str], baseline: Dict[str, Any]) -> str:
    """Instructions per op, side by side, with the ratio and the change against the baseline."""
    head = ["workload", "op", "ops"] + list(targets)
    if "cloudpickle" in targets and CHECKED_TARGET in targets:
        head.append("ratio")
    if "marshal-floor" in targets and CHECKED_TARGET in targets:
        head.append("vs floor")
    head.append("baseline")
    head.append("change")
    rows = []
    for spec in specs:
        for op in ("dumps", "loads"):
            row = [spec.name, op, str(spec.ops)]
            values = {}
            for t in targets:
                v = counts.get(spec.name, {}).get(t, {}).get(op)
                values[t] = v
                row.append("n/a" if v is None else f"{v:,}")
            if "ratio" in head:
                ours, theirs = values.get(CHECKED_TARGET), values.get("cloudpickle")
                row.append(f"{ours / theirs:.2f}x" if ours and theirs else "")
            if "vs floor" in head:
                ours, floor = values.get(CHECKED_TARGET), values.get("marshal-floor")
                row.append(f"{ours / floor:.2f}x" if ours and floor else "")
            entry = baseline.get(spec.name)
            base = entry["counts"][op] if entry and entry.get("params") == spec.params() \
                else None
            ours = values.get(CHECKED_TARGET)
            row.append("" if base is None else f"{base:,}")
            row.append(f"{(ours - base) / base:+.1%}" if base and ours is not None else "")
            rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in [head] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastfnpickle.bench.callgrind",
        description="Instructions per operation under valgrind --tool=callgrind for the core "
                    "workloads: fastfnpickle's compiled core and cloudpickle side by side, "
                    "checked against a committed baseline.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if a fastfnpickle count exceeds the baseline by more than "
                           "the tolerance (or has no baseline)")
    mode.add_argument("--update", action="store_true",
                      help="write this Python version's counts into the baseline")
    parser.add_argument("--tolerance", type=float, default=None,
                        help=f"allowed growth, 0.25 = +25%% (default {DEFAULT_TOLERANCE}; "
                             "env FASTFNPICKLE_CALLGRIND_TOLERANCE)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help=f"baseline file (default: {BASELINE_NAME} beside this module)")
    parser.add_argument("--workloads", metavar="NAMES",
                        help=f"comma-separated, of {', '.join(CORE_BY_NAME)} (default: all)")
    parser.add_argument("--targets", metavar="NAMES",
                        help=f"comma-separated, of {', '.join(TARGETS + OPTIONAL_TARGETS)} "
                             f"(default: {', '.join(TARGETS)})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="children run at once (default: the number of CPUs)")
    parser.add_argument("--json", metavar="FILE", help="also write the counts as JSON")
    parser.add_argument("--valgrind", default=None, help="the valgrind executable")
    return parser


def _choose(text: Optional[str], known: Sequence[str], what: str) -> List[str]:
    if not text:
        return list(known)
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return chosen


def _tolerance(value: Optional[float]) -> float:
    if value is not None:
        return value
    env = os.environ.get("FASTFNPICKLE_CALLGRIND_TOLERANCE")
    return float(env) if env else DEFAULT_TOLERANCE


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0 fine, 1 a regression (``--check``), 2 cannot measure (usage, no valgrind,
    no compiled core, a child failed)."""
    from .runner import quiet_broken_pipe

    return quiet_broken_pipe(lambda: _main(argv))


def _main(argv: Optional[List[str]]) -> int:
    args = _parser().parse_args(argv)
    try:
        names = _choose(args.workloads, list(CORE_BY_NAME), "workload(s)")
        targets = _choose(args.targets, TARGETS + OPTIONAL_TARGETS, "target(s)")
        if args.targets is None:
            targets = list(TARGETS)
        tolerance = _tolerance(args.tolerance)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = [CORE_BY_NAME[n] for n in names]
    valgrind = shutil.which(args.valgrind or "valgrind")
    if not valgrind:
        print("error: valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    if (args.check or args.update) and CHECKED_TARGET not in targets:
        print(f"error: --check and --update need the {CHECKED_TARGET} target", file=sys.stderr)
        return 2
    try:
        from .. import _core  # noqa: F401
    except ImportError as exc:
        if CHECKED_TARGET in targets:
            print(f"error: the compiled core is not built ({exc})", file=sys.stderr)
            return 2
    if "cloudpickle" in targets:
        try:
            import cloudpickle  # noqa: F401
        except ImportError:
            print("note: cloudpickle not installed; its column is left out", file=sys.stderr)
            targets.remove("cloudpickle")
    path = args.baseline or default_baseline_path()
    try:
        data = load_baseline(path)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    version = minor_version()
    baseline = data.get("versions", {}).get(version, {}).get("workloads", {})
    valgrind_version = subprocess.run([valgrind, "--version"], capture_output=True,
                                      text=True).stdout.strip()

    _warm_bytecode(sys.executable)
    counts: Dict[str, Dict[str, Dict[str, int]]] = {}
    jobs = [(spec, t) for spec in specs for t in targets]
    print(f"callgrind: {len(jobs)} children, Python {sys.version.split()[0]}, "
          f"{valgrind_version}", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="fastfnpickle-callgrind-") as tmp, \
                ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = {job: pool.submit(measure, job[0], job[1], valgrind, Path(tmp))
                       for job in jobs}
            for (spec, target), future in futures.items():
                counts.setdefault(spec.name, {})[target] = future.result()
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(f"Instructions per operation (callgrind Ir), Python {sys.version.split()[0]}, "
          f"PYTHONHASHSEED=0; ratio = {CHECKED_TARGET} / cloudpickle; baseline: {path} "
          f"[{version}]")
    print(format_table(counts, specs, targets, baseline))
    for spec in specs:
        print(f"  {spec.name}: {spec.what}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"python": sys.version.split()[0], "valgrind": valgrind_version,
             "workloads": {s.name: {"params": s.params(), "counts": counts.get(s.name, {})}
                           for s in specs}}, indent=1) + "\n")
    if args.update:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = updated_baseline(data, version, counts, specs, valgrind_version)
        path.write_text(json.dumps(new, indent=1) + "\n")
        print(f"baseline for Python {version} written to {path}")
        return 0
    if args.check:
        regressions, notes = compare(baseline, counts, specs, tolerance)
        for note in notes:
            print(f"note: {note}")
        if regressions:
            print(f"REGRESSION against {path} [{version}]:")
            for line in regressions:
                print(f"  {line}")
            return 1
        print(f"check passed: every count within {tolerance:+.0%} of the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
