"""Coverage-guided fuzzing of ``pickle.loads`` on fastfnpickle pickles (atheris + libFuzzer).

Subcommands (``python fuzz/harness.py <command> --help`` for the options)::

    run       one fuzzing run: a twin, a mode, a number of runs or a time budget
    ci        the short, repeatable runs of the test command (nox session ``fuzz``)
    release   the longer runs to do before a release
    triage    load files in fresh children under both twins (PYTHONMALLOC=debug) and say how
              each ends; ``--save NAME`` adds one to the regression corpus tests/fuzz_corpus/

Every input is loaded with ``pickle.loads`` in the fuzzing process (coverage comes from
atheris's instrumentation of fastfnpickle's Python modules), under ``PYTHONMALLOC=debug`` (a
heap overrun aborts at the next check of the guard bytes) and an address-space limit (a forged
length or memo index gives ``MemoryError`` at once). The outcome must be one of:

- the pickle loads;
- ``pickle.UnpicklingError``, ``ImportError`` (a module the pickle names is not installed, or
  is refused by the harness, see ``_block_new_imports``), ``MemoryError``, ``RecursionError``;
- any other ``Exception`` except ``SystemError``, provided fastfnpickle's own code did not
  raise it: the innermost frame of its traceback is not a fastfnpickle module (compiled or
  pure). That is the stdlib unpickler refusing garbage (``EOFError``, ``ValueError``,
  ``KeyError``, ``TypeError``, ``AttributeError``, ``IndexError``, ``OverflowError``,
  ``UnicodeDecodeError``, ...) or a callable the pickle names (any global) raising on the
  arguments the pickle gives it;
- any exception raised by code that came out of the pickle itself (a pickle can run the
  functions it makes while it loads: a REDUCE calling one, ``__init_subclass__``,
  ``__set_name__``, ``__del__``). Such code runs in the fuzzing process only when it is
  identical to code of an unmodified seed; forged code is refused before its first
  instruction (:class:`Guard`), and called in a child instead (below).

Anything else is a **finding**: a crash (signal, abort) or a hang (libFuzzer's ``-timeout``)
in library code, which ends the run; ``SystemError`` raised anywhere but in code from the
pickle, a ``BaseException`` that is not an ``Exception``, or any other exception raised by a
fastfnpickle frame (the reconstructors promise ``UnpicklingError`` on bad arguments), which
are kept as ``wrong-exception-*`` inputs (one per exception type and raising line) while the
run goes on. A crash while forged code was running (its Python stack shows it; forged code
the guard could not see) is informational (``load-info-*``) and libFuzzer is restarted.

Modes: ``free`` lets libFuzzer mutate the bytes as it likes (checksums then refuse most
damaged code, which is the point: the pickle's structure and the reconstructors' arguments
are fuzzed); ``reseal`` is a custom mutator that also mutates the sealed code payloads
(marshal bytes and, structure-aware, the bytecode itself) and recomputes their CRC-32, so
forged code reaches the load-side bytecode check (``_codecheck``) and CPython's own.

The twin: ``--twin python`` sets ``FASTFNPICKLE_NO_EXTENSIONS=1`` for the fuzzing process.
"""

import argparse
import faulthandler
import gc
import hashlib
import json
import os
import pickle
import pickletools
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTS = os.path.join(ROOT, "tests")
CORPUS = os.path.join(TESTS, "fuzz_corpus")
DEFAULT_WORKDIR = os.path.join(ROOT, ".nox", "fuzz-work")
NO_EXT = "FASTFNPICKLE_NO_EXTENSIONS"
TWINS = ("python", "cython")
MODES = ("free", "reseal")

MAX_LEN = 16384          # libFuzzer -max_len; bigger seeds are left out
INPUT_TIMEOUT = 10       # seconds per input before libFuzzer calls it a hang
RSS_LIMIT_MB = 4096      # libFuzzer kills (and reports) a process above this
# RLIMIT_AS of the fuzzing process, above what it has mapped once set up: a forged length or
# memo index (the C unpickler allocates the memo up to any index a PUT names: 8 GB for a
# 12-byte pickle) fails fast with MemoryError. Every byte allocated costs a write under
# PYTHONMALLOC=debug (it fills new blocks), so a generous limit costs throughput.
ADDRESS_HEADROOM = 384 << 20
CALL_BATCH = 32          # functions called per forked child
CALL_SECONDS = 0.5       # per call, then the child is killed (SIGALRM)
FLUSH_SECONDS = 5.0      # all calls of one batch, then the rest are skipped
MAX_FUNCTIONS = 8        # functions taken from one loaded input
MAX_INFO_FILES = 20      # informational call-crash inputs kept per run
MAX_RESTARTS = 20        # libFuzzer restarts after informational crashes, per run
CALL_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL,
                signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGXFSZ)

# The short CI runs (noxfile.py session ``fuzz``): fixed runs and seed, so a run repeats
# (PYTHONHASHSEED is fixed too); the time cap only guards against a much slower machine.
CI_PLAN = [  # (twin, mode, runs): 60-90 s per twin on a 2-core machine running 2 sessions
    ("python", "free", 80000),
    ("python", "reseal", 25000),
    ("cython", "free", 100000),
    ("cython", "reseal", 40000),
]
CI_SEED = 24
CI_MAX_SECONDS = 120
RELEASE_SECONDS = 1800


class Finding(Exception):
    """What the harness raises in libFuzzer's callback to stop the run and keep the input."""


# ============================================================================ the fuzzed process

class Stats:
    """Counters the fuzzing process writes to a JSON file for the driver to report."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self.counts: Dict[str, int] = {}
        self.started = time.monotonic()
        self.last_write = 0.0

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def maybe_write(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.path and (force or now - self.last_write >= 1.0):
            self.last_write = now
            data = {"seconds": round(now - self.started, 1), "counts": self.counts}
            tmp = self.path + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)


def _package_files() -> Set[str]:
    import fastfnpickle

    pkg = os.path.dirname(fastfnpickle.__file__)
    return {name for name in os.listdir(pkg) if name.endswith((".py", ".pyx", ".pxi"))}


def _is_package_frame(filename: str, names: Set[str]) -> bool:
    # Cython records the .pyx path as it was given to cythonize (relative), the pure twin an
    # absolute path: both end in fastfnpickle/<module file>.
    head, base = os.path.split(filename)
    return base in names and os.path.basename(head) == "fastfnpickle"


def _is_pickled_code(frame: types.FrameType) -> bool:
    """Whether ``frame`` runs code that came out of a pickle: its globals are not the dict of
    an imported module (the loader makes a new dict, or a dynamic module's, for them). Cython's
    traceback frames carry their module's globals, so they count as library code."""
    g = frame.f_globals
    name = g.get("__name__") if type(g) is dict else None
    module = sys.modules.get(name) if type(name) is str else None
    return module is None or getattr(module, "__dict__", None) is not g


class ForgedCodeRun(Exception):
    """Raised by the guard instead of running forged code in the fuzzing process."""


class Guard:
    """While active (a profile hook), code that came out of a pickle runs in the fuzzing
    process only if it is identical to code of an unmodified seed; anything else is refused
    with :class:`ForgedCodeRun` before its first instruction.

    A pickle can run its own functions while it loads (a REDUCE calling a function it just
    made, ``__init_subclass__``, ``__set_name__``, a state setter, ``__del__`` when the result
    is dropped). Forged bytecode may crash or hang when run, which CPython allows; it must not
    end the fuzzing process as if loading had crashed. Such code is called in a forked child
    instead (:class:`Caller`), where a crash is informational.
    """

    def __init__(self, seed_codes: "SeedCodes", stats: Stats) -> None:
        self.seed_codes = seed_codes
        self.stats = stats
        self.library: Set[int] = set()  # ids of code objects seen to be library code

    def _hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if id(code) in self.library:
            return
        if not _is_pickled_code(frame):
            self.library.add(id(code))  # module code lives as long as its module
            return
        if code in self.seed_codes:
            return
        self.stats.add("load:forged-code-refused")
        raise ForgedCodeRun(f"forged code {code.co_name!r} not run in the fuzzing process")

    def __enter__(self) -> "Guard":
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(None)  # also re-armed on the next __enter__ (an error in the hook,
                              # which is how the refusal works, unsets it)


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, the guard's refusal to run forged code."""
    seen = 0
    e: Optional[BaseException] = exc
    while e is not None and seen < 50:
        if isinstance(e, ForgedCodeRun):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def classify(exc: BaseException, names: Set[str]) -> Tuple[str, Optional[str]]:
    """(counter key, None) for an allowed exception, (counter key, why) for a finding."""
    kind = type(exc).__name__
    if _refused(exc):
        return "exc:forged-code-refused", None
    if isinstance(exc, (pickle.UnpicklingError, ImportError, MemoryError, RecursionError)):
        return f"exc:{kind}", None
    innermost = None
    tb = exc.__traceback__
    while tb is not None:
        innermost = tb.tb_frame
        tb = tb.tb_next
    if innermost is not None and _is_pickled_code(innermost):
        # Code from the pickle ran while loading (__init_subclass__, __set_name__, a state
        # setter...) and raised: forged bytecode may do anything when run, SystemError too.
        return f"pickled-code:{kind}", None
    filename = innermost.f_code.co_filename if innermost is not None else ""
    if isinstance(exc, SystemError):
        return f"finding:{kind}", f"SystemError on load ({filename}): {exc}"
    if not isinstance(exc, Exception):
        return f"finding:{kind}", f"{kind} (not an Exception) on load: {exc!r}"
    if _is_package_frame(filename, names):
        return (f"finding:{kind}",
                f"fastfnpickle raised {kind} instead of UnpicklingError ({filename}): {exc}")
    return f"exc:{kind}", None


def _bytearray8_overrun(data: bytes) -> bool:
    """Whether ``data`` holds a BYTEARRAY8 opcode longer than the input left after it.

    CPython's C unpickler (3.9-3.13 at least) allocates that bytearray before checking the
    length, and when the allocation fails frees it half-built: the process aborts later, in
    CPython, whatever fastfnpickle does. Only the opcodes as the unpickler reads them count
    (walked without running anything), not a 0x96 byte inside data.
    """
    if b"\x96" not in data:
        return False
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError as exc:
        return "bytearray8" in str(exc)
    except Exception:
        return False
    return False


def _fingerprint(code: types.CodeType) -> Tuple[Any, ...]:
    """What code equality leaves out but running the code depends on. 3.11's ``==`` on code
    compares the bytecode *deoptimized* (a forged specialized opcode with garbage caches
    passes for its base opcode), the constants by ``==`` (``1 == 1.0 == True``), and ignores
    the stack size (a smaller one overruns the frame) and the kinds of the local names. So:
    the raw bytecode as stored (``_co_code_adaptive``, read without the deoptimized copy
    ``co_code`` makes, which overruns on forged code), the constants' types, and the rest.
    Code that has run since it was loaded (quickened in place) no longer matches: it is then
    refused, which costs coverage, never a false finding."""
    return (getattr(code, "_co_code_adaptive", None),
            tuple(type(c).__name__ for c in code.co_consts),
            code.co_stacksize, code.co_nlocals, code.co_flags, code.co_firstlineno,
            code.co_varnames, code.co_cellvars, code.co_freevars,
            getattr(code, "co_qualname", None))


class SeedCodes:
    """The code objects of the unmodified seeds (nested ones too), for "is this the code
    CPython's compiler made?": equal as code objects *and* in every field equality skips."""

    def __init__(self) -> None:
        self._by_code: Dict[types.CodeType, Set[Tuple[Any, ...]]] = {}

    @classmethod
    def of(cls, codes: Sequence[types.CodeType]) -> "SeedCodes":
        seeds = cls()
        for code in codes:
            seeds.add(code)
        return seeds

    def add(self, code: types.CodeType) -> None:
        self._by_code.setdefault(code, set()).add(_fingerprint(code))
        for const in code.co_consts:
            if type(const) is types.CodeType:
                self.add(const)

    def __contains__(self, code: object) -> bool:
        if type(code) is not types.CodeType:
            return False
        prints = self._by_code.get(code)
        return prints is not None and _fingerprint(code) in prints

    def __len__(self) -> int:
        return len(self._by_code)


class Caller:
    """Calls loaded functions in forked children, a batch per child, with a watchdog."""

    def __init__(self, seed_codes: SeedCodes, artifacts: str, stats: Stats,
                 iter_functions: Any, guard: Guard) -> None:
        self.guard = guard
        self.seed_codes = seed_codes
        self.artifacts = artifacts
        self.stats = stats
        self.iter_functions = iter_functions
        self.queue: List[Tuple[types.FunctionType, bytes]] = []
        self.seen: Set[int] = set()
        self.info_files = 0
        self.scratch = tempfile.mkdtemp(prefix="fuzz-call-")

    def offer(self, obj: Any, data: bytes) -> None:
        for fn in self.iter_functions(obj, MAX_FUNCTIONS):
            key = self._key(fn)
            if key in self.seen:
                continue
            if len(self.seen) > 1_000_000:
                self.seen.clear()
            self.seen.add(key)
            self.queue.append((fn, data))
        if len(self.queue) >= CALL_BATCH:
            self.flush()

    @staticmethod
    def _key(fn: types.FunctionType) -> int:
        # The same code with other cells, defaults or globals is called again: a loader that
        # mismatched those is what crashes unmodified code.
        return hash((fn.__code__, len(fn.__closure__ or ()),
                     tuple(type(d).__name__ for d in fn.__defaults__ or ()),
                     len(fn.__globals__)))

    def flush(self) -> None:
        queue, self.queue = self.queue, []
        deadline = time.monotonic() + FLUSH_SECONDS
        start = 0
        try:
            while start < len(queue):
                if time.monotonic() > deadline:
                    self.stats.add("call:skipped-time", len(queue) - start)
                    break
                reached, status = self._run_child(queue, start, deadline)
                if status is None:  # every call ended (returned or raised)
                    self.stats.add("call:made", len(queue) - start)
                    break
                self.stats.add("call:made", reached - start + 1)
                self._record(queue[reached], status)  # the call the child died in
                start = reached + 1
        finally:
            with self.guard:  # the last references: a forged __del__ may run
                del queue

    def _run_child(self, queue: List[Tuple[types.FunctionType, bytes]], start: int,
                   deadline: float) -> Tuple[int, Optional[int]]:
        """Call queue[start:] in a child; (index reached, None if all ended, else the signal
        or -1 for a kill by the parent's watchdog)."""
        rfd, wfd = os.pipe()
        faulthandler.cancel_dump_traceback_later()  # its thread must not hold a lock at fork
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(rfd)
            _child_calls([fn for fn, _ in queue[start:]], wfd, self.scratch)
        os.close(wfd)
        reached = start
        finished = False
        buf = b""
        killed = False
        try:
            while True:
                left = min(deadline, time.monotonic() + 2 * CALL_SECONDS + 1) - time.monotonic()
                if left <= 0 or not select.select([rfd], [], [], left)[0]:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
                chunk = os.read(rfd, 4096)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line == b"done":
                        finished = True
                    else:
                        reached = start + int(line)
        finally:
            os.close(rfd)
        _, status = os.waitpid(pid, 0)
        if finished and not killed and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return len(queue), None
        if killed:
            return reached, -1
        if os.WIFSIGNALED(status):
            return reached, os.WTERMSIG(status)
        return reached, -2  # exited on its own before finishing: os._exit in forged code

    def _record(self, item: Tuple[types.FunctionType, bytes], status: int) -> None:
        fn, data = item
        seed = fn.__code__ in self.seed_codes
        hang = status in (-1, signal.SIGALRM, signal.SIGXCPU)
        what = ("hang" if hang else "exit" if status == -2
                else signal.Signals(status).name if status > 0 else "?")
        self.stats.add(f"call:{'seed' if seed else 'forged'}-{what}")
        digest = hashlib.sha256(data).hexdigest()[:12]
        if seed and not hang and status != -2:
            path = os.path.join(self.artifacts, f"call-crash-seed-{what}-{digest}")
            with open(path, "wb") as fh:
                fh.write(data)
            self.stats.maybe_write(force=True)
            why = (f"calling unmodified seed code {fn.__code__.co_name!r} crashed the child "
                   f"({what}); input saved as {path}")
            sys.stderr.write(f"Finding: {why}\n")
            raise Finding(why)
        if self.info_files < MAX_INFO_FILES:
            self.info_files += 1
            path = os.path.join(self.artifacts, f"call-info-{what}-{digest}")
            with open(path, "wb") as fh:
                fh.write(data)


def _child_calls(functions: List[types.FunctionType], wfd: int, scratch: str) -> None:
    """Body of the forked child: reset what libFuzzer set up, limit, call, report progress."""
    try:
        faulthandler.disable()
        for signo in CALL_SIGNALS:
            signal.signal(signo, signal.SIG_DFL)  # libFuzzer's handlers would report a crash
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir(scratch)
        for which, value in ((resource.RLIMIT_FSIZE, 1 << 20), (resource.RLIMIT_CPU, 10)):
            hard = resource.getrlimit(which)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        for i, fn in enumerate(functions):
            os.write(wfd, b"%d\n" % i)
            signal.setitimer(signal.ITIMER_REAL, CALL_SECONDS)
            try:
                _call(fn, depth=0)
            except BaseException:
                pass
            signal.setitimer(signal.ITIMER_REAL, 0)
        gc.collect()
        os.write(wfd, b"done\n")
    finally:
        os._exit(0)


def _call(fn: Any, depth: int) -> None:
    code = fn.__code__
    required = code.co_argcount - len(fn.__defaults__ or ())
    kwonly = code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]
    kwargs = {name: 1 for name in kwonly if name not in (fn.__kwdefaults__ or {})}
    result = fn(*[1] * max(required, 0), **kwargs)
    if type(result) is types.GeneratorType:
        for _ in range(16):
            next(result)
        result.close()
    elif type(result) is types.CoroutineType:
        try:
            for _ in range(16):
                result.send(None)
        except StopIteration:
            pass
        result.close()
    elif type(result) is types.FunctionType and depth == 0:
        _call(result, depth + 1)


class Mutator:
    """The ``reseal`` mode's custom mutator (see the module docstring)."""

    def __init__(self, atheris: Any) -> None:
        import opcode

        import sealed

        self.atheris = atheris
        self.sealed = sealed
        self.opcodes = sorted(set(opcode.opmap.values()))
        # Opcodes followed by inline cache entries: ending the bytecode right after one of
        # them is the 3.11 heap overrun of issue 24.
        self.cached = [op for op in self.opcodes if _cache_entries(op)]
        self.extended_arg = opcode.opmap.get("EXTENDED_ARG", 144)
        self.failures = 0

    def __call__(self, data: bytes, max_size: int, seed: int) -> bytes:
        try:
            return self._mutate(data, max_size, seed)
        except Exception:  # a bug of this mutator must not pass for a finding in the library
            self.failures += 1
            return self.sealed.reseal_all(self.atheris.Mutate(data, max_size))

    def _mutate(self, data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        sealed = self.sealed
        payloads = sealed.find_payloads(data)
        r = rng.random()
        if not payloads or r < 0.3:
            return sealed.reseal_all(self.atheris.Mutate(data, max_size))
        p = payloads[rng.randrange(len(payloads))]
        body = data[p.start + 4:p.end]
        spans = sealed.bytecode_spans(body) if r >= 0.55 else None
        if spans:
            at, end = spans[rng.randrange(len(spans))]
            new_code = self._mutate_bytecode(body[at + 4:end], rng, max_size)
            body = sealed.with_bytecode(body, (at, end), new_code)
        else:
            body = self.atheris.Mutate(body, max(len(body) + 64, 8))
        out = sealed.replace_payload(data, p, sealed.seal(body))
        if len(out) > max_size:
            return sealed.reseal_all(self.atheris.Mutate(data, max_size))
        return out

    def _mutate_bytecode(self, code: bytes, rng: random.Random, max_size: int) -> bytes:
        units = len(code) // 2
        choice = rng.randrange(7)
        buf = bytearray(code)
        if units == 0 or choice == 0:
            return self.atheris.Mutate(code, len(code) + 16)
        i = 2 * rng.randrange(units)
        if choice == 1:    # end the bytecode at an instruction boundary
            return bytes(buf[:max(i, 2)])
        if choice == 2:    # end it right after an instruction that has inline caches
            op = self.cached[rng.randrange(len(self.cached))] if self.cached else 0
            buf[i] = op
            return bytes(buf[:i + 2])
        if choice == 3:    # another opcode
            buf[i] = self.opcodes[rng.randrange(len(self.opcodes))]
        elif choice == 4:  # another argument
            buf[i + 1] = rng.randrange(256)
        elif choice == 5:  # an EXTENDED_ARG prefix
            buf[i:i] = bytes([self.extended_arg, rng.randrange(256)])
        else:              # an instruction (with whatever follows it) duplicated
            j = min(len(buf), i + 2 * rng.randrange(1, 4))
            buf[i:i] = buf[i:j]
        return bytes(buf)


def _cache_entries(op: int) -> int:
    import opcode

    entries = getattr(opcode, "_inline_cache_entries", None)
    if entries is None:
        return 0
    if isinstance(entries, (list, tuple)):
        return entries[op] if op < len(entries) else 0
    return int(entries.get(opcode.opname[op], 0))


def _mapped_bytes() -> int:
    """This process's address space in use (VmSize)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 2 << 30


def _block_new_imports() -> None:
    """From now on, importing a module not yet imported raises ModuleNotFoundError.

    A mutated pickle can name any module; importing one runs its top level (``antigravity``
    starts a browser) and makes runs depend on what was imported earlier. Loading raises
    ``ImportError`` for a missing module anyway, so this changes no outcome class.
    """
    class _Refuse:
        @staticmethod
        def find_spec(name: str, path: Any = None, target: Any = None) -> None:
            raise ModuleNotFoundError(f"fuzz harness: importing {name!r} is refused", name=name)

    sys.meta_path.insert(0, _Refuse())  # type: ignore[arg-type]


def _libfuzzer_dict(path: str, names: Sequence[str], marks: Sequence[str]) -> None:
    """A libFuzzer dictionary: the reconstructor names and format marks as pickle strings."""
    def entry(raw: bytes) -> str:
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}"
                             for b in raw) + '"'
    tokens = [b"fastfnpickle._rebuild", b"\x8c\x15fastfnpickle._rebuild\x94"]
    for name in names:
        raw = name.encode()
        tokens += [raw, b"\x8c" + bytes([len(raw)]) + raw + b"\x94\x93",
                   b"cfastfnpickle._rebuild\n" + raw + b"\n"]
    for mark in marks:
        raw = mark.encode()
        tokens.append(b"\x8c" + bytes([len(raw)]) + raw)
    with open(path, "w") as fh:
        for i, tok in enumerate(tokens):
            fh.write(f"t{i}={entry(tok)}\n")


def fuzz_main(argv: List[str]) -> None:
    """The fuzzing process (run by ``run``; libFuzzer's options follow ``--``)."""
    parser = argparse.ArgumentParser(prog="harness.py fuzz")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--no-call", action="store_true", help="load only; call nothing")
    args, libfuzzer = parser.parse_known_args(argv)
    if libfuzzer and libfuzzer[0] == "--":
        libfuzzer = libfuzzer[1:]
    import atheris

    sys.path[:0] = [TESTS, HERE]
    # Coverage of the library's Python code: the pure twin entirely, the compiled twin's
    # Python helpers (bytecode check, class registry, reconstructors written in Python).
    with atheris.instrument_imports(include=["fastfnpickle"]):
        import fastfnpickle
        import fastfnpickle._rebuild  # noqa: F401  (the load side, imported under coverage)
        from fastfnpickle import _format
    import _seeds

    work = os.path.abspath(args.workdir)
    stats = Stats(os.path.join(work, "stats.json"))
    seeds_dir = os.path.join(work, "seeds")
    os.makedirs(seeds_dir, exist_ok=True)
    seed_codes = SeedCodes()
    for name, data in _seeds.seed_pickles(fastfnpickle.dumps).items():
        if len(data) > MAX_LEN:
            continue
        with open(os.path.join(seeds_dir, name), "wb") as fh:
            fh.write(data)
        for fn in _seeds.iter_functions(pickle.loads(data)):
            seed_codes.add(fn.__code__)
    _libfuzzer_dict(os.path.join(work, "pickle.dict"), _format.RECONSTRUCTORS,
                    [_format.CODE_TAG, _format.CODE_TAG_SETS, _format.FROZENSET_MARK,
                     _format.SLICE_MARK])
    stats.counts["seed-codes"] = len(seed_codes)
    names = _package_files()
    artifacts = os.path.join(work, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    guard = Guard(seed_codes, stats)
    caller = None if args.no_call else Caller(seed_codes, artifacts, stats,
                                              _seeds.iter_functions, guard)
    expected = int(os.environ.get("FUZZ_EXPECTED_RUNS", "0"))

    # What a mutated pickle can reach: no terminal, a scratch directory, bounded memory.
    scratch = tempfile.mkdtemp(prefix="fuzz-load-")
    os.chdir(scratch)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = open(os.devnull, "w")
    gc.collect()
    limit = _mapped_bytes() + ADDRESS_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def one_input(data: bytes) -> None:
        # A Python stack on stderr before libFuzzer's -timeout fires: the driver reads it to
        # tell a hang of the loader from forged code looping while run during a load.
        faulthandler.dump_traceback_later(INPUT_TIMEOUT - 2, file=sys.__stderr__)
        try:
            _one_input(data)
        finally:
            faulthandler.cancel_dump_traceback_later()

    def _one_input(data: bytes) -> None:
        if "runs" not in stats.counts:  # atheris imports its core in Fuzz(): block after that
            _block_new_imports()
            # After libFuzzer's handlers: on a crash the Python stack is printed first (the
            # driver reads it to tell a loader crash from pickled code crashing when run),
            # then libFuzzer's handler keeps the input.
            faulthandler.enable(sys.__stderr__)
        stats.add("runs")
        if _bytearray8_overrun(data):
            stats.add("skipped:cpython-bytearray8")
            return
        try:
            with guard:
                obj = pickle.loads(data)
        except BaseException as exc:
            key, why = classify(exc, names)
            stats.add(key)
            if why is not None:
                record_exception_finding(exc, why, data)
            del exc
        else:
            stats.add("loaded")
            if caller is not None:
                caller.offer(obj, data)
            with guard:  # dropping it may run a forged __del__
                del obj
        n = stats.counts["runs"]
        if n % 256 == 0:
            with guard:
                gc.collect()  # a bad refcount or traversal shows up near the input that made it
        if n == expected and caller is not None:
            caller.flush()
        stats.maybe_write(force=n == expected)

    reported: Set[Tuple[str, str]] = set()

    def record_exception_finding(exc: BaseException, why: str, data: bytes) -> None:
        """Keep the input (once per exception type and raising line) and go on fuzzing: the
        driver fails the run when it finds these files. Crashes and hangs end the process."""
        tb = exc.__traceback__
        where = "unknown"
        while tb is not None:
            where = f"{os.path.basename(tb.tb_frame.f_code.co_filename)}-{tb.tb_lineno}"
            tb = tb.tb_next
        key = (type(exc).__name__, where)
        if key in reported:
            return
        reported.add(key)
        digest = hashlib.sha256(data).hexdigest()[:12]
        path = os.path.join(artifacts, f"wrong-exception-{key[0]}-{where}-{digest}")
        with open(path, "wb") as fh:
            fh.write(data)
        sys.stderr.write(f"Finding: {why}\n  input: {path}\n")
        sys.stderr.flush()
        stats.maybe_write(force=True)

    mutator = Mutator(atheris) if args.mode == "reseal" else None
    atheris.Setup([sys.argv[0], *libfuzzer], one_input, custom_mutator=mutator)
    atheris.Fuzz()


# ============================================================================ the driver

def _env(twin: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop(NO_EXT, None)
    if twin == "python":
        env[NO_EXT] = "1"
    env.setdefault("PYTHONHASHSEED", "0")
    # A heap overrun (forged code on 3.11 made CPython write past a buffer) then aborts at
    # the next check of the allocator's guard bytes instead of corrupting memory silently.
    env.setdefault("PYTHONMALLOC", "debug")
    return env


def run(twin: str, mode: str, runs: int, seconds: int, seed: int, workdir: str,
        extra_corpora: Sequence[str] = (), keep_corpus: bool = False,
        call: bool = True) -> Dict[str, Any]:
    """One fuzzing run (libFuzzer restarted after a crash that is not a finding, until the
    runs or the time are used up); returns its summary (also printed)."""
    work = os.path.abspath(os.path.join(workdir, f"{twin}-{mode}"))
    if os.path.isdir(work) and not keep_corpus:
        shutil.rmtree(work)
    corpus = os.path.join(work, "corpus")
    artifacts = os.path.join(work, "artifacts")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(artifacts, exist_ok=True)
    for name in os.listdir(artifacts):
        os.remove(os.path.join(artifacts, name))
    stats_path = os.path.join(work, "stats.json")
    env = _env(twin)
    started = time.monotonic()
    executed = 0
    counts: Dict[str, int] = {}
    texts: List[str] = []
    rc = 0
    for attempt in range(MAX_RESTARTS + 1):
        left = seconds - int(time.monotonic() - started)
        if left < 5 or (runs and executed >= runs):
            break
        options = [f"-seed={seed + attempt}" if seed else "-seed=0", f"-max_total_time={left}",
                   f"-timeout={INPUT_TIMEOUT}", f"-rss_limit_mb={RSS_LIMIT_MB}",
                   f"-max_len={MAX_LEN}", "-print_final_stats=1",
                   f"-artifact_prefix={artifacts}/", f"-dict={os.path.join(work, 'pickle.dict')}"]
        if runs:
            options.append(f"-runs={runs - executed}")
        cmd = [sys.executable, os.path.abspath(__file__), "fuzz", "--mode", mode, "--workdir",
               work, *([] if call else ["--no-call"]), "--", *options, corpus,
               os.path.join(work, "seeds"), *[os.path.abspath(c) for c in extra_corpora]]
        env["FUZZ_EXPECTED_RUNS"] = str(runs - executed if runs else 0)
        print(f"fuzz: {twin}/{mode}: {' '.join(cmd[1:])}", flush=True)
        log_path = os.path.join(work, f"libfuzzer-{attempt}.log")
        if os.path.exists(stats_path):
            os.remove(stats_path)
        before = set(os.listdir(artifacts))
        with open(log_path, "wb") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        with open(log_path, "rb") as fh:
            text = fh.read().decode(errors="replace")
        texts.append(text)
        executed += _final_stat(text, "number_of_executed_units") or 0
        for key, value in _read_counts(stats_path).items():
            counts[key] = counts.get(key, 0) + value
        if rc == 0:
            break
        new = sorted(set(os.listdir(artifacts)) - before)
        crash = [n for n in new if n.startswith(("crash-", "timeout-", "oom-", "leak-"))]
        if not crash or not _pickled_code_crash(text, os.path.join(artifacts, crash[0]),
                                                os.path.join(work, "seeds")):
            break
        # Forged code from the pickle was running (a class body hook, a state setter) and
        # crashed or hung: informational, like a crash of a call. Keep it and go on.
        info = "load-info-" + crash[0]
        os.replace(os.path.join(artifacts, crash[0]), os.path.join(artifacts, info))
        counts["load:pickled-code-crash"] = counts.get("load:pickled-code-crash", 0) + 1
        print(f"fuzz: {twin}/{mode}: forged code crashed while being run during a load "
              f"(informational, kept as {info}); restarting", flush=True)
        rc = 0
    took = time.monotonic() - started
    text = "\n".join(texts)
    summary = _summarize(twin, mode, rc, took, executed, text, counts, artifacts)
    summary["log"] = os.path.join(work, "libfuzzer-*.log")
    # Whether a crash reproduces alone: one that does not was prepared by an earlier input
    # (heap damage noticed later); replay the run's corpus to find that one.
    summary["triage"] = {os.path.basename(path): {t: triage_one(path, t) for t in TWINS}
                         for path in summary["findings"]
                         if os.path.basename(path).startswith(("crash-", "timeout-", "oom-"))}
    _print_summary(summary, texts[-1] if texts else "")
    return summary


def _read_counts(path: str) -> Dict[str, int]:
    try:
        with open(path) as fh:
            return dict(json.load(fh)["counts"])
    except (OSError, ValueError, KeyError):
        return {}


def _library_dirs() -> List[str]:
    """Where the code that is not from a pickle lives: the stdlib, site-packages, this
    directory and the fastfnpickle package (found without importing it here)."""
    import importlib.util
    import sysconfig

    dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(HERE)
    spec = importlib.util.find_spec("fastfnpickle")
    if spec is not None and spec.origin:
        dirs.add(os.path.dirname(spec.origin))
    return sorted(os.path.realpath(d) + os.sep for d in dirs)


def _innermost_python_frame(text: str) -> Optional[str]:
    """The file of the innermost frame of the last Python stack the crash printed (Python's
    fatal-error report, faulthandler's on a signal, or its dump before a hang)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if "(most recent call first)" in lines[i]:
            for line in lines[i + 1:i + 4]:
                line = line.strip()
                if line.startswith('File "'):
                    return line[len('File "'):line.index('"', len('File "'))]
    return None


def _pickled_code_crash(text: str, crash_input: str, seeds_dir: str) -> bool:
    """Whether the crash (or hang) happened while code from the pickle was running, and that
    code was forged (the input holds a code payload no seed has): then it is not a finding."""
    import sealed

    where = _innermost_python_frame(text)
    if where is None:
        return False
    real = os.path.realpath(where) if os.path.isabs(where) else where
    if any(real.startswith(d) for d in _library_dirs()) or where.endswith(".pyx"):
        return False
    seed_payloads = set()
    for name in os.listdir(seeds_dir):
        with open(os.path.join(seeds_dir, name), "rb") as fh:
            data = fh.read()
        seed_payloads.update(data[p.start:p.end] for p in sealed.find_payloads(data))
    with open(crash_input, "rb") as fh:
        data = fh.read()
    return any(data[p.start:p.end] not in seed_payloads for p in sealed.find_payloads(data))


def _final_stat(text: str, key: str) -> Optional[int]:
    """libFuzzer's final statistic ``key``, summed over the runs ``text`` holds."""
    values = [int(line.split(":")[-1].strip()) for line in text.splitlines()
              if line.startswith(f"stat::{key}:")]
    return sum(values) if values else None


def _summarize(twin: str, mode: str, rc: int, took: float, executed: int, text: str,
               counts: Dict[str, int], artifacts: str) -> Dict[str, Any]:
    files = sorted(os.listdir(artifacts)) if os.path.isdir(artifacts) else []
    info = [f for f in files if f.startswith(("call-info-", "load-info-"))]
    findings = [f for f in files if f not in info]
    reason = None
    if rc != 0 or findings:
        reason = _failure_reason(text) or f"libFuzzer exited {rc}"
    return {"twin": twin, "mode": mode, "rc": rc, "seconds": round(took, 1),
            "executed": executed, "per_second": round(executed / took) if took else 0,
            "new_units": _final_stat(text, "new_units_added"), "counts": counts,
            "findings": [os.path.join(artifacts, f) for f in findings],
            "call_info": [os.path.join(artifacts, f) for f in info], "failure": reason}


def _failure_reason(text: str) -> Optional[str]:
    """The Finding lines the harness wrote, and libFuzzer's own error (a crash, a hang, an
    uncaught exception), with a little context."""
    lines = text.splitlines()
    reasons = [line for line in lines if line.startswith("Finding:")]
    for i, line in enumerate(lines):
        if "ERROR: libFuzzer" in line or line.startswith("ALARM:") or (
                line.startswith("==") and "ERROR" in line):
            context = [x for x in lines[max(0, i - 2):i + 2] if x.strip()]
            reasons.append(" | ".join(context)[-600:])
            break
    return "\n    ".join(reasons) if reasons else None


def _print_summary(s: Dict[str, Any], text: str) -> None:
    c = s["counts"]
    exc = ", ".join(f"{k[4:]} {v}" for k, v in sorted(c.items()) if k.startswith("exc:"))
    calls = ", ".join(f"{k[5:]} {v}" for k, v in sorted(c.items()) if k.startswith("call:"))
    ran = ", ".join(f"{k[13:]} {v}" for k, v in sorted(c.items())
                    if k.startswith("pickled-code:"))
    if ran:
        exc += f"; raised by code from the pickle run during the load: {ran}"
    print(f"fuzz: {s['twin']}/{s['mode']}: {s['executed']} inputs in {s['seconds']}s "
          f"({s['per_second']}/s), {c.get('loaded', 0)} loaded, new units "
          f"{s['new_units']}; exceptions: {exc or 'none'}", flush=True)
    print(f"fuzz: {s['twin']}/{s['mode']}: calls: {calls or 'none'}; informational call "
          f"crash inputs kept: {len(s['call_info'])}", flush=True)
    for name, outcomes in s.get("triage", {}).items():
        for twin, outcome in outcomes.items():
            print(f"fuzz: {s['twin']}/{s['mode']}: {name} alone in a fresh interpreter, "
                  f"{twin} twin: {outcome}", flush=True)
    if s["failure"] or s["findings"]:
        tail = "\n".join(text.splitlines()[-40:])
        print(f"fuzz: {s['twin']}/{s['mode']}: FINDING: {s['failure']}\n"
              f"  inputs: {', '.join(s['findings']) or '(none saved)'}\n"
              f"  reproduce and classify: python fuzz/harness.py triage <input>\n"
              f"--- last lines of {s.get('log')} ---\n{tail}", flush=True)


def ci_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness.py ci", description=(
        "The test command's fuzzing: fixed runs and seed per twin and mode; the compiled "
        "twin's runs start from the corpus the pure twin's runs grew (its coverage is what "
        "guides: the compiled core itself is not instrumented)."))
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR)
    parser.add_argument("--summary", help="write the summaries here as JSON")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the runs")
    args = parser.parse_args(argv)
    summaries = []
    for twin, mode, runs in CI_PLAN:
        extra = []
        if twin == "cython":
            extra = [os.path.join(args.workdir, f"python-{mode}", "corpus")]
        summaries.append(run(twin, mode, int(runs * args.scale), CI_MAX_SECONDS, CI_SEED,
                             args.workdir, extra_corpora=[e for e in extra if os.path.isdir(e)]))
    return _report(summaries, args.summary)


def _report(summaries: List[Dict[str, Any]], path: Optional[str]) -> int:
    if path:
        with open(path, "w") as fh:
            json.dump(summaries, fh, indent=1)
    bad = [s for s in summaries if s["failure"] or s["findings"]]
    for s in summaries:
        mark = "FINDING" if s in bad else "ok"
        print(f"fuzz summary: {s['twin']:<6} {s['mode']:<6} {s['executed']:>8} inputs "
              f"{s['per_second']:>6}/s  {mark}", flush=True)
    return 1 if bad else 0


def run_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness.py run")
    parser.add_argument("--twin", choices=TWINS, default="cython")
    parser.add_argument("--mode", choices=MODES, default="free")
    parser.add_argument("--runs", type=int, default=0, help="0: until --seconds")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=CI_SEED)
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR)
    parser.add_argument("--keep-corpus", action="store_true",
                        help="continue from the corpus of an earlier run in --workdir")
    parser.add_argument("--corpus", action="append", default=[],
                        help="more seed directories (e.g. another twin's grown corpus)")
    parser.add_argument("--no-call", action="store_true")
    args = parser.parse_args(argv)
    s = run(args.twin, args.mode, args.runs, args.seconds, args.seed, args.workdir,
            args.corpus, args.keep_corpus, not args.no_call)
    return _report([s], None)


def release_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness.py release", description=(
        "Longer runs before a release: every twin and mode for --seconds each, continuing "
        "from the corpus earlier release runs grew in --workdir."))
    parser.add_argument("--seconds", type=int, default=RELEASE_SECONDS)
    parser.add_argument("--workdir", default=os.path.join(ROOT, ".nox", "fuzz-release"))
    parser.add_argument("--seed", type=int, default=0, help="0: libFuzzer picks one")
    args = parser.parse_args(argv)
    summaries = []
    for twin, mode, _ in CI_PLAN:
        extra = [os.path.join(args.workdir, f"{other}-{mode}", "corpus")
                 for other in TWINS if other != twin]
        summaries.append(run(twin, mode, 0, args.seconds, args.seed, args.workdir,
                             [e for e in extra if os.path.isdir(e)], keep_corpus=True))
    return _report(summaries, os.path.join(args.workdir, "summary.json"))


# ============================================================================ triage

TRIAGE_CHILD = r"""
import faulthandler, gc, pickle, sys
faulthandler.enable()
data = open(sys.argv[1], "rb").read()
try:
    obj = pickle.loads(data)
except pickle.UnpicklingError as exc:
    print("UnpicklingError:", str(exc)[:300])
except BaseException as exc:
    import traceback
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
    print(f"other: {type(exc).__name__}: {str(exc)[:300]} (raised at {where})")
else:
    print("loaded:", type(obj).__name__)
    del obj
gc.collect()
"""


def triage_one(path: str, twin: str, timeout: float = 60) -> str:
    env = _env(twin)
    env["PYTHONMALLOC"] = "debug"
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run([sys.executable, "-c", TRIAGE_CHILD, os.path.abspath(path)], env=env,
                              capture_output=True, timeout=timeout, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return f"HANG (no end within {timeout:.0f}s)"
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        sig = -proc.returncode
        name = signal.Signals(sig).name if 0 < sig < 65 else f"exit {proc.returncode}"
        return f"CRASH ({name}) {out} | {' | '.join(err[:3])}"
    return out


def corpus_name(description: str, data: bytes, minor_tagged: bool) -> str:
    """``<description>[.py3XX].<12 hex of sha256>.pickle``: the minor only when the bytes carry
    a code tag (they load only on that minor)."""
    slug = "".join(c if c.isalnum() else "-" for c in description.lower()).strip("-")
    minor = f".py{sys.version_info[0]}{sys.version_info[1]}" if minor_tagged else ""
    return f"{slug}{minor}.{hashlib.sha256(data).hexdigest()[:12]}.pickle"


def carries_code_tag(data: bytes) -> bool:
    """Whether ``data`` holds a code tag (``3.11``, ``3.11+sets``) as a pickle string."""
    tag = "%d.%d" % sys.version_info[:2]
    return any(p in data for p in (tag.encode() + b"\x94", tag.encode() + b"+sets",
                                   b"\x8c" + bytes([len(tag)]) + tag.encode()))


def triage_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness.py triage")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--save", metavar="DESCRIPTION",
                        help="copy the (single) file into tests/fuzz_corpus/ under this name")
    args = parser.parse_args(argv)
    worst = 0
    for path in args.files:
        for twin in TWINS:
            outcome = triage_one(path, twin)
            clean = outcome.startswith(("loaded", "UnpicklingError"))
            worst = worst or (0 if clean else 1)
            print(f"{path}: {twin}: {outcome}")
    if args.save:
        if len(args.files) != 1:
            parser.error("--save takes exactly one file")
        with open(args.files[0], "rb") as fh:
            data = fh.read()
        name = corpus_name(args.save, data, carries_code_tag(data))
        os.makedirs(CORPUS, exist_ok=True)
        with open(os.path.join(CORPUS, name), "wb") as fh:
            fh.write(data)
        print(f"saved as tests/fuzz_corpus/{name}")
    return worst


COMMANDS = {"fuzz": fuzz_main, "run": run_main, "ci": ci_main, "release": release_main,
            "triage": triage_main}


def main(argv: List[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print(f"usage: python fuzz/harness.py {{{','.join(COMMANDS)}}} [options]")
        return 2
    return COMMANDS[argv[0]](argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
