"""``python -m fastfnpickle bench``: every serializer side by side, in one run.

Each workload is first pickled once by every target (to learn its size, whether the target
can pickle it at all, and that the pickle loads back to a working object, in this process and
in a fresh interpreter); then the targets are timed round-robin, with the starting target
rotating each round, so that drift on a shared machine hits them all alike. Reported times are
medians over the rounds, ratios the medians of the per-round ratios (:func:`paired_ratio`);
within a sample the garbage collector is paused, as ``timeit`` does.

The workload and target definitions (``WORKLOADS``, ``resolve_targets``) and the case
machinery (:func:`prepare_case`, :meth:`Case.dumps_op`, :meth:`Case.loads_op`) are shared with
the pytest-benchmark suites in ``bench/``.
"""

import argparse
import contextlib
import cProfile
import fnmatch
import gc
import io
import json
import os
import pickle
import platform
import pstats
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import report
from .targets import TARGET_NAMES, Target, loads_for, resolve_targets
from .workloads import FAMILIES, WORKLOADS, Workload, user_workload

__all__ = [
    "Case", "FAMILIES", "TARGET_NAMES", "Target", "WORKLOADS", "Workload", "main",
    "prepare_case", "resolve_targets", "sample_indices", "time_each", "time_op",
]

# Each timing gets its ratio to these targets' median, under these keys.
BASELINES = {"cloudpickle": "ratio_cloudpickle", "pickle": "ratio_pickle",
             "marshal-floor": "ratio_floor"}


def sample_indices(n: int) -> List[int]:
    """The calls of a per-call workload whose pickles are checked after loading."""
    return sorted({0, n // 2, n - 1})


def _discard(buffer: Any) -> None:
    return None  # a false value: the buffer stays out of band


class Case:
    """One workload pickled by one target: its pickles, and the operations to time."""

    def __init__(self, workload: Workload, target: Target, obj: Any, scale: float) -> None:
        self.workload = workload
        self.target = target
        self.obj = obj
        self.scale = scale
        self.calls = len(obj) if workload.per_call else 1
        self.status = "ok"
        self.note = ""
        self.pickles: List[bytes] = []
        self.buffers: List[List[Any]] = []

    @property
    def items(self) -> List[Any]:
        return self.obj if self.workload.per_call else [self.obj]

    @property
    def size(self) -> int:
        """Bytes of one pickle (the first call's), in band."""
        return len(self.pickles[0]) if self.pickles else 0

    @property
    def oob_bytes(self) -> int:
        return sum(memoryview(b).nbytes for b in self.buffers[0]) if self.buffers else 0

    def dumps_op(self) -> Callable[[], None]:
        """Pickle the whole workload once (every call, for per-call workloads)."""
        dumps = self.target.dumps
        callback = _discard if self.workload.out_of_band else None
        if self.workload.per_call:
            items = self.obj

            def op() -> None:
                for item in items:
                    dumps(item, callback)
        else:
            obj = self.obj

            def op() -> None:
                dumps(obj, callback)
        return op

    def dumps_sampler(self) -> Callable[[int], float]:
        """``sample(number)``: seconds per dumps op over ``number`` ops.

        A cold workload pickles a fresh copy each op (made before the clock starts).
        """
        fresh = self.workload.fresh
        if fresh is None or self.workload.per_call:
            op = self.dumps_op()
            return lambda number: time_op(op, number)
        dumps = self.target.dumps
        callback = _discard if self.workload.out_of_band else None
        obj = self.obj

        def sample(number: int) -> float:
            pool = [fresh(obj) for _ in range(number)]
            return time_each(dumps, pool, callback)
        return sample

    def loads_sampler(self) -> Callable[[int], float]:
        """``sample(number)``: seconds per loads op over ``number`` ops, run on the target's
        own load implementation (its binding is entered outside the clock)."""
        op = self.loads_op()
        loading = self.target.loading

        def sample(number: int) -> float:
            with loading():
                return time_op(op, number)
        return sample

    def loads_op(self) -> Callable[[], None]:
        """Load the workload's pickles once."""
        loads = self.target.loads
        pairs = [(p, b or None) for p, b in zip(self.pickles, self.buffers, strict=True)]
        if len(pairs) == 1:
            data, buffers = pairs[0]

            def op() -> None:
                loads(data, buffers)
        else:
            def op() -> None:
                for data, buffers in pairs:
                    loads(data, buffers)
        return op

    def fail(self, status: str, note: str) -> None:
        self.status = status
        self.note = note
        self.pickles = []
        self.buffers = []


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 160 else text[:157] + "..."


def prepare_case(workload: Workload, target: Target, obj: Any, scale: float) -> Case:
    """Pickle ``obj`` with ``target`` once and check the result loads back correctly.

    The returned case has status "ok", "n/a" (the target cannot do this workload by design:
    the stdlib on functions, the floor on non-functions) or "error".
    """
    case = Case(workload, target, obj, scale)
    if target.functions_only and not workload.functions:
        case.fail("n/a", "functions only")
        return case
    try:
        for item in case.items:
            buffers: List[Any] = []
            callback = buffers.append if workload.out_of_band else None
            case.pickles.append(target.dumps(item, callback))
            case.buffers.append(buffers)
    except Exception as exc:
        case.fail("n/a" if target.may_fail else "error", _one_line(exc))
        return case
    try:
        with target.loading():
            check_loaded(workload, target.loads, case.pickles, case.buffers, scale)
    except Exception as exc:
        case.fail("error", "loaded wrong: " + _one_line(exc))
    return case


def check_loaded(workload: Workload, loads: Callable[[bytes, Any], Any], pickles: Sequence[bytes],
                 buffers: Sequence[Sequence[Any]], scale: float,
                 indices: Optional[List[int]] = None) -> None:
    """Load the sampled pickles of a workload and run its check (raises on a wrong result)."""
    if workload.per_call:
        if indices is None:
            indices = sample_indices(len(pickles))
            pairs = [(i, pickles[i], buffers[i]) for i in indices]
        else:
            pairs = list(zip(indices, pickles, buffers, strict=True))
        loaded = {i: loads(p, list(b) or None) for i, p, b in pairs}
        if workload.check is not None:
            workload.check(loaded, scale)
    else:
        obj = loads(pickles[0], list(buffers[0]) or None)
        if workload.check is not None:
            workload.check(obj, scale)


# --------------------------------------------------------------------------------------------
# The fresh-interpreter check

def _verify_in_subprocess(cases: List[Case], progress: "Progress") -> None:
    """Load every case's pickles in a fresh interpreter of its own; mark the ones that fail.

    One interpreter per case: a pickle that only loads because another target's pickle
    imported a submodule first (the marshal floor's did, before it recorded submodules) must
    fail here as it fails for a user."""
    todo = [c for c in cases if c.status == "ok"]
    if not todo:
        return
    progress.say(f"checking {len(todo)} pickles, each in a fresh interpreter")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    code = "from fastfnpickle.bench.runner import _verify_child; _verify_child()"

    def check(case: Case) -> Optional[str]:
        if case.workload.per_call:
            indices = sample_indices(len(case.pickles))
        else:
            indices = [0]
        samples = [(i, case.pickles[i], [bytes(memoryview(b)) for b in case.buffers[i]])
                   for i in indices]
        job = (0, case.workload.name, case.workload.per_call, case.target.loader, case.scale,
               samples)
        try:
            proc = subprocess.run([sys.executable, "-c", code], input=pickle.dumps([job], 5),
                                  capture_output=True, env=env, timeout=600)
        except subprocess.TimeoutExpired:
            return "fresh-interpreter check timed out"
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            return "fresh-interpreter check crashed: " + (err[-1] if err else "?")
        [(_, error)] = json.loads(proc.stdout.decode())
        return None if error is None else "wrong in a fresh interpreter: " + error

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        for case, error in zip(todo, pool.map(check, todo), strict=True):
            if error is not None:
                case.fail("error", error)


def _verify_child() -> None:
    """Child side of the fresh-interpreter check: JSON ``[[key, error or null], ...]``."""
    jobs = pickle.loads(sys.stdin.buffer.read())
    out = []
    for key, name, per_call, loader, scale, samples in jobs:
        workload = WORKLOADS.get(name) or Workload(name, "user", "", lambda s: None, None,
                                                   per_call=per_call)
        error = None
        try:
            check_loaded(workload, loads_for(loader), [s[1] for s in samples],
                         [s[2] for s in samples], scale, indices=[s[0] for s in samples])
        except Exception as exc:
            error = _one_line(exc)
        out.append([key, error])
    sys.stdout.write(json.dumps(out))


# --------------------------------------------------------------------------------------------
# Timing

def time_op(op: Callable[[], None], number: int) -> float:
    """Seconds per call of ``op`` over ``number`` calls, garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            op()
        return (time.perf_counter() - start) / number
    finally:
        if enabled:
            gc.enable()


def time_each(dumps: Callable[[Any, Any], bytes], objs: List[Any], callback: Any) -> float:
    """Seconds per ``dumps(obj, callback)`` over ``objs``, garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for obj in objs:
            dumps(obj, callback)
        return (time.perf_counter() - start) / len(objs)
    finally:
        if enabled:
            gc.enable()


def _calibrate(op: Callable[[], None], min_time: float) -> int:
    """How many calls make one sample last at least ``min_time`` (after a warm-up call)."""
    one = time_op(op, 1)
    if one >= min_time:
        return 1
    number = 1
    while True:
        t = time_op(op, number) * number
        if t >= min_time / 4 or number >= 1 << 20:
            break
        number *= 4
    per_call = max(t / number, 1e-9)
    return max(1, min(int(min_time / per_call) + 1, 1 << 22))


class Progress:
    """Progress lines on stderr; rounds update in place on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.start = time.monotonic()

    def say(self, text: str, inline: bool = False) -> None:
        if not self.enabled:
            return
        stamp = f"[{time.monotonic() - self.start:6.1f}s] "
        if self.tty and inline:
            sys.stderr.write("\r\033[K" + stamp + text)
        else:
            if self.tty:
                sys.stderr.write("\r\033[K")
            sys.stderr.write(stamp + text + "\n")
        sys.stderr.flush()


def _time_workload(cases: List[Case], repeats: int, min_time: float,
                   progress: "Progress", label: str) -> Dict[Tuple[str, str], Dict[str, Any]]:
    runnable = [c for c in cases if c.status == "ok"]
    ops: List[Tuple[Case, str, Callable[[int], float], int]] = []
    for case in runnable:
        # Calibrated on the warm op: a cold sample only lasts longer.
        ops.append((case, "dumps", case.dumps_sampler(), _calibrate(case.dumps_op(), min_time)))
        with case.target.loading():
            loads_number = _calibrate(case.loads_op(), min_time)
        ops.append((case, "loads", case.loads_sampler(), loads_number))
    samples: Dict[Tuple[str, str], List[float]] = {(c.target.name, k): [] for c, k, _, _ in ops}
    for rnd in range(repeats):
        progress.say(f"{label}: round {rnd + 1}/{repeats}", inline=True)
        # Rotate by whole targets so a target's dumps and loads stay adjacent.
        shift = (2 * rnd) % len(ops) if ops else 0
        for case, kind, sampler, number in ops[shift:] + ops[:shift]:
            samples[(case.target.name, kind)].append(sampler(number))
        gc.collect()
    numbers = {(c.target.name, k): n for c, k, _, n in ops}
    return {key: {"median_s": statistics.median(values), "min_s": min(values),
                  "samples_s": values, "number": numbers[key]}
            for key, values in samples.items()}


# --------------------------------------------------------------------------------------------
# The run

def run(workloads: List[Workload], targets: List[Target], missing: Dict[str, str], *,
        repeats: int, min_time: float, scale: float, verify: bool = True,
        progress: Optional[Progress] = None, command: str = "") -> Dict[str, Any]:
    """Benchmark ``targets`` on ``workloads``; the result is what ``--json`` writes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dill warns as it falls back; the table says enough
        return _run(workloads, targets, missing, repeats=repeats, min_time=min_time,
                    scale=scale, verify=verify, progress=progress or Progress(False),
                    command=command)


def _run(workloads: List[Workload], targets: List[Target], missing: Dict[str, str], *,
         repeats: int, min_time: float, scale: float, verify: bool, progress: Progress,
         command: str) -> Dict[str, Any]:
    built: List[Tuple[Workload, List[Case]]] = []
    skipped: Dict[str, str] = {}
    for i, workload in enumerate(workloads):
        absent = workload.missing()
        if absent is not None:
            skipped[workload.name] = f"needs {absent}"
            progress.say(f"skip {workload.name}: needs {absent}")
            continue
        progress.say(f"[{i + 1}/{len(workloads)}] {workload.name}: build and check")
        with workload.environment(scale):
            obj = workload.build(scale)
            cases = [prepare_case(workload, t, obj, scale) for t in targets]
        built.append((workload, cases))
    if verify:
        _verify_in_subprocess([c for _, cases in built for c in cases], progress)
    timings: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for i, (workload, cases) in enumerate(built):
        label = f"[{i + 1}/{len(built)}] {workload.name}"
        started = time.monotonic()
        with workload.environment(scale):
            timed = _time_workload(cases, repeats, min_time, progress, label)
        progress.say(f"{label}: timed in {time.monotonic() - started:.1f}s")
        for key, value in timed.items():
            timings[(workload.name, key[0], key[1])] = value
        for case in cases:
            case.obj = None  # let the workload's memory go before the next one
    results = []
    for workload, cases in built:
        for case in cases:
            row: Dict[str, Any] = {
                "workload": workload.name, "target": case.target.name, "status": case.status,
                "note": case.note, "size": case.size if case.status == "ok" else None,
                "oob_bytes": case.oob_bytes if case.status == "ok" else None,
            }
            for kind in ("dumps", "loads"):
                row[kind] = timings.get((workload.name, case.target.name, kind))
            results.append(row)
        _add_ratios(results, workload.name)
    return {
        "schema": 1,
        "meta": _meta(targets, repeats, min_time, scale, command),
        "targets": [{"name": t.name, "available": True, "version": t.version, "note": t.note,
                     "loads_via": t.loads_via}
                    for t in targets]
                   + [{"name": n, "available": False, "version": None, "note": why,
                       "loads_via": None}
                      for n, why in missing.items()],
        "workloads": [{"name": w.name, "family": w.family, "description": w.description,
                       "calls": cases[0].calls if cases else 1,
                       "out_of_band": w.out_of_band, "skipped": None}
                      for w, cases in built]
                     + [{"name": n, "family": WORKLOADS[n].family if n in WORKLOADS else "user",
                         "description": "", "calls": 0, "out_of_band": False, "skipped": why}
                        for n, why in skipped.items()],
        "results": results,
    }


def paired_ratio(timing: Dict[str, Any], ref: Optional[Dict[str, Any]]) -> Optional[float]:
    """The median over the rounds of ``timing``'s sample / ``ref``'s sample in the same round.

    Both samples of a round are taken within about a second of each other, so a slow phase of a
    shared machine that spans them cancels out; the ratio of the two overall medians does not
    pair them, and in one noisy run put the same function workload at 0.70x and another at
    1.43x of the floor where the per-round ratios gave 0.98x and 1.19x (their quiet-run values).
    """
    if ref is None:
        return None
    pairs = [t / r for t, r in zip(timing["samples_s"], ref["samples_s"], strict=True) if r > 0]
    return statistics.median(pairs) if pairs else None


def _add_ratios(results: List[Dict[str, Any]], workload: str) -> None:
    rows = [r for r in results if r["workload"] == workload]
    by_target = {r["target"]: r for r in rows}
    for kind in ("dumps", "loads"):
        for base, key in BASELINES.items():
            ref = by_target.get(base, {}).get(kind)
            for row in rows:
                timing = row.get(kind)
                if timing is not None:
                    timing[key] = paired_ratio(timing, ref)
    cp = by_target.get("cloudpickle", {})
    cp_size = (cp.get("size") or 0) + (cp.get("oob_bytes") or 0)
    for row in rows:
        size = row.get("size")
        row["size_ratio_cloudpickle"] = (
            (size + (row.get("oob_bytes") or 0)) / cp_size
            if size is not None and cp.get("status") == "ok" and cp_size else None)


def _meta(targets: List[Target], repeats: int, min_time: float, scale: float,
          command: str) -> Dict[str, Any]:
    from .. import IMPLEMENTATION, __version__

    versions = {t.name: t.version for t in targets}
    try:
        import numpy

        versions["numpy"] = numpy.__version__
    except ImportError:
        pass
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "fastfnpickle": __version__,
        "fastfnpickle_default_implementation": IMPLEMENTATION,
        "versions": versions,
        "repeats": repeats,
        "min_sample_s": min_time,
        "scale": scale,
        "protocol": 5,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
    }


# --------------------------------------------------------------------------------------------
# Profiling (--profile TARGET)

def profile(workloads: List[Workload], target: Target, scale: float, seconds: float,
            top: int = 10, out: Any = None) -> None:
    """Print a cProfile top list (by internal time) of ``target`` on each workload."""
    out = out or sys.stdout
    for workload in workloads:
        if workload.missing() is not None:
            continue
        with workload.environment(scale):
            case = prepare_case(workload, target, workload.build(scale), scale)
            if case.status != "ok":
                out.write(f"\n== {workload.name}: {case.status} ({case.note})\n")
                continue
            for kind, op in (("dumps", case.dumps_op()), ("loads", case.loads_op())):
                loading = target.loading() if kind == "loads" else contextlib.nullcontext()
                with loading:
                    _profile_op(workload, target, case, kind, op, seconds, top, out)


def _profile_op(workload: Workload, target: Target, case: Case, kind: str,
                op: Callable[[], None], seconds: float, top: int, out: Any) -> None:
    """Profile one operation of one prepared case and print its top list."""
    number = _calibrate(op, seconds)
    fresh = workload.fresh if kind == "dumps" and not workload.per_call else None
    if fresh is not None:  # cold: a fresh copy per op, made outside the profile
        pool = [fresh(case.obj) for _ in range(number)]
        dumps = target.dumps
        callback = _discard if workload.out_of_band else None

        def op() -> None:
            dumps(pool.pop(), callback)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(number):
        op()
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"\n== {workload.name} {kind} x{number} with {target.name}\n")
    out.write(text.getvalue())


# --------------------------------------------------------------------------------------------
# Command line

def _split(values: Optional[List[str]]) -> Optional[List[str]]:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _select_workloads(patterns: Optional[List[str]], objects: List[str]) -> List[Workload]:
    chosen: List[Workload] = []
    if patterns is None:
        chosen = [] if objects else list(WORKLOADS.values())
    else:
        for pattern in patterns:
            matched = [w for n, w in WORKLOADS.items() if fnmatch.fnmatchcase(n, pattern)
                       or w.family == pattern]
            if not matched:
                raise ValueError(f"no workload matches {pattern!r}; see --list")
            chosen.extend(w for w in matched if w not in chosen)
    return chosen + [user_workload(spec) for spec in objects]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastfnpickle bench",
        description="Compare fastfnpickle (both implementations) with pickle, cloudpickle, "
                    "dill and the marshal floor, side by side in one run. Times are medians; "
                    "ratios are the median over the rounds of time / baseline time in the "
                    "same round (below 1 is faster).")
    parser.add_argument("--workloads", action="append", metavar="NAMES",
                        help="comma-separated workload names, glob patterns or families "
                             f"({', '.join(FAMILIES)}); default: all")
    parser.add_argument("--targets", action="append", metavar="NAMES",
                        help=f"comma-separated targets; default: all of {', '.join(TARGET_NAMES)}")
    parser.add_argument("--object", action="append", default=[], metavar="MODULE:ATTR",
                        help="also (or, without --workloads, only) benchmark this object of yours")
    parser.add_argument("--quick", action="store_true",
                        help="3 short rounds: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, help="rounds per workload (default 11; quick: 3)")
    parser.add_argument("--min-time", type=float,
                        help="least seconds per timed sample (default 0.05; quick: 0.002)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply workload sizes by this (default 1)")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the ratios to cloudpickle as a grouped bar chart "
                             "(needs matplotlib)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip loading every pickle in a fresh interpreter")
    parser.add_argument("--profile", metavar="TARGET",
                        help="instead of timing, print a cProfile top 10 of TARGET per workload")
    parser.add_argument("--list", action="store_true", help="list workloads and targets, exit")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _command(argv: Optional[List[str]]) -> str:
    import shlex

    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None and args[:1] == ["bench"]:
        args = args[1:]
    return " ".join(["python -m fastfnpickle bench"] + [shlex.quote(a) for a in args])


def quiet_broken_pipe(run: Callable[[], int]) -> int:
    """``run()``, but a reader that leaves early (``| head``) ends it quietly, status 141."""
    try:
        return run()
    except BrokenPipeError:
        # The interpreter flushes stdout again on exit and would report the pipe then.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # stdout is no real file (replaced in-process): nothing flushes it later
        return 141  # 128 + SIGPIPE, as a shell reports it


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m fastfnpickle bench``; returns the exit status.

    Exit status 1 means a fastfnpickle target failed a workload (an error row), 2 a usage
    error.
    """
    return quiet_broken_pipe(lambda: _main(argv))


# numpy's BLAS keeps worker threads spinning for a while after it computes; on a machine with
# few cores they take time from whatever target runs next. One BLAS thread, set before numpy
# loads (the workloads import it lazily), keeps them out of the measurement.
_QUIET_BLAS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _quiet_blas() -> None:
    if "numpy" not in sys.modules:
        for name in _QUIET_BLAS:
            os.environ.setdefault(name, "1")


def _main(argv: Optional[List[str]]) -> int:
    args = _parser().parse_args(argv)
    _quiet_blas()
    if args.list:
        for w in WORKLOADS.values():
            print(f"{w.name:28} {w.family:10} {w.description}")
        print()
        found, missing = resolve_targets()
        for t in found:
            print(f"{t.name:28} {t.version} {t.note}")
        for name, why in missing.items():
            print(f"{name:28} unavailable: {why}")
        return 0
    try:
        workloads = _select_workloads(_split(args.workloads), args.object)
        target_names = _split(args.targets)
        if args.profile:
            target_names = [args.profile]
        targets, missing = resolve_targets(target_names)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plot and not report.have_matplotlib():
        print("error: --plot needs matplotlib, which is not installed; "
              "pip install 'fastfnpickle[plot]' (or: pip install matplotlib)", file=sys.stderr)
        return 2
    for name, why in missing.items():
        print(f"note: target {name} skipped: {why}", file=sys.stderr)
    if not targets:
        print("error: none of the chosen targets can run here", file=sys.stderr)
        return 2
    if args.profile:
        profile(workloads, targets[0], args.scale, args.min_time or 1.0)
        return 0
    repeats = args.repeats or (3 if args.quick else 11)
    min_time = args.min_time if args.min_time is not None else (0.002 if args.quick else 0.05)
    try:
        result = run(workloads, targets, missing, repeats=repeats, min_time=min_time,
                     scale=args.scale, verify=not args.no_verify,
                     progress=Progress(not args.quiet), command=_command(argv))
    except Exception:
        traceback.print_exc()
        return 2
    print(report.format_markdown(result) if args.markdown else report.format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    if args.plot:
        report.plot(result, args.plot)
    failed = [r for r in result["results"]
              if r["status"] == "error" and r["target"].startswith("fastfnpickle")]
    return 1 if failed else 0
