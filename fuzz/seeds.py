"""Seed pickles for the fuzzer, and the hand-made inputs of known bugs for the regression corpus.

    python fuzz/seeds.py write DIR       the seed corpus (tests/_seeds.py) as files in DIR
    python fuzz/seeds.py known [--save]  the inputs of issue 24 built for this Python; with
                                         --save, written into tests/fuzz_corpus/

The known inputs are built with the pure-Python pickler (both twins write the same bytes) and
edited at the level of pickle opcodes or marshal bytes: no forged code object is ever made in
this process (3.11's ``code.replace`` on such code writes past a buffer; 3.14's marshal
crashes on some).
"""

import argparse
import io
import marshal
import os
import sys
import types
from typing import Any, Callable, Dict, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "tests"), HERE]

import sealed  # noqa: E402  (fuzz/ is not a package; the path entry above finds it)


def write_seeds(directory: str) -> int:
    import _seeds

    import fastfnpickle

    os.makedirs(directory, exist_ok=True)
    seeds = _seeds.seed_pickles(fastfnpickle.dumps)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(data)
    return len(seeds)


# ------------------------------------------------------------------------------ known bugs

def fill_cell_on_none() -> bytes:
    """``fastfnpickle._rebuild.fill_cell(None, ())``: written opcode by opcode (protocol 2,
    GLOBAL, an empty state tuple, REDUCE). The compiled core read ``state[0]`` of the empty
    tuple without a bounds check (issue 24)."""
    return b"\x80\x02cfastfnpickle._rebuild\nfill_cell\nN)\x86R."


def _pickler_replacing(edit: Callable[[tuple], tuple]) -> Any:
    """A pure-twin Pickler whose function reduce values pass through ``edit``."""
    from fastfnpickle import _core_py

    class Editing(_core_py.Pickler):  # type: ignore[misc, name-defined]
        def reducer_override(self, obj: Any) -> Any:
            rv = super().reducer_override(obj)
            if type(obj) is types.FunctionType and isinstance(rv, tuple):
                return edit(rv)
            return rv
    return Editing


def _dumps(pickler: Any, obj: Any, protocol: int = 5) -> bytes:
    buf = io.BytesIO()
    pickler(buf, protocol).dump(obj)
    return buf.getvalue()


def _target() -> Callable[[int], int]:
    def make() -> Callable[[int], int]:
        return lambda x: x + 1
    return make()


def function_state_with(field: str, value: Any) -> bytes:
    """A lambda whose state tuple (``_format.STATE_FIELDS``) has ``value`` at ``field``; the
    state setter is ``fastfnpickle._rebuild.function(<function>, state)``."""
    from fastfnpickle._format import STATE_FIELDS

    def edit(rv: tuple) -> tuple:
        state = list(rv[2] or ()) if len(rv) > 2 else []
        state += [None] * (len(STATE_FIELDS) - len(state))
        state[STATE_FIELDS.index(field)] = value
        while state and state[-1] is None:
            state.pop()
        return (rv[0], rv[1], tuple(state), None, None, rv[0])
    return _dumps(_pickler_replacing(edit), _target())


def _cache_entries(op: int) -> int:
    import opcode

    entries = getattr(opcode, "_inline_cache_entries", None)
    if entries is None:
        return 0
    if isinstance(entries, (list, tuple)):
        return entries[op] if op < len(entries) else 0
    return int(entries.get(opcode.opname[op], 0))


def _cut_after_last_cached(code: bytes) -> Optional[bytes]:
    """``code`` ending right after the last instruction that has inline cache entries, those
    entries (and everything after them) cut off; None when no instruction has any."""
    i = 0
    cut = None
    while i + 1 < len(code):
        n = _cache_entries(code[i])
        if n:
            cut = i + 2
        i += 2 + 2 * n
    return None if cut is None else code[:cut]


def forged_code_without_caches() -> Optional[bytes]:
    """A function whose bytecode's last instruction lacks the inline cache entries CPython
    expects after it, the checksum recomputed. On 3.11, ``code.replace()`` of such code (the
    loader sets the file name with it) wrote past the bytecode buffer (issue 24). None on
    Pythons without inline caches (3.10)."""
    forged: Dict[str, bytes] = {}

    def edit(rv: tuple) -> tuple:
        args = list(rv[1])
        for i, arg in enumerate(args):
            if type(arg) is bytes and len(arg) > 4:
                body = arg[4:]
                spans = sealed.bytecode_spans(body)
                if not spans:
                    continue
                at, end = spans[0]
                cut = _cut_after_last_cached(body[at + 4:end])
                if cut is None:
                    continue
                args[i] = sealed.seal(sealed.with_bytecode(body, (at, end), cut))
                forged["done"] = args[i]
        return (rv[0], tuple(args)) + rv[2:]
    data = _dumps(_pickler_replacing(edit), _target())
    if "done" not in forged:
        return None
    # The stream still unmarshals (only the bytecode is short): the forgery reaches the code
    # check rather than stopping at marshal.
    marshal.loads(forged["done"][4:])  # never replace()d or called here
    return data


def known_inputs() -> Dict[str, bytes]:
    """{description: pickle} for this Python (descriptions become corpus file names)."""
    out = {
        "fill-cell-none-empty-state": fill_cell_on_none(),
        "function-state-doc-empty-tuple": function_state_with("doc", ()),
        "function-state-module-empty-tuple": function_state_with("module", ()),
    }
    forged = forged_code_without_caches()
    if forged is not None:
        out["forged-code-last-instruction-without-caches"] = forged
    return out


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write the seed corpus into DIR")
    w.add_argument("directory")
    k = sub.add_parser("known", help="build the known-bug inputs for this Python")
    k.add_argument("--save", action="store_true", help="write them into tests/fuzz_corpus/")
    args = parser.parse_args(argv)
    if args.command == "write":
        print(f"{write_seeds(args.directory)} seed pickles written to {args.directory}")
        return 0
    import harness

    for description, data in known_inputs().items():
        name = harness.corpus_name(description, data, harness.carries_code_tag(data))
        print(f"{name}: {len(data)} bytes")
        if args.save:
            os.makedirs(harness.CORPUS, exist_ok=True)
            with open(os.path.join(harness.CORPUS, name), "wb") as fh:
                fh.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
