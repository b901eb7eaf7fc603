"""What a pickle captured: functions and classes by value, what they hold, and what it costs.

``explain(obj)`` pickles ``obj`` and reads the result back symbolically; ``python -m
fastfnpickle explain FILE`` reads an existing pickle the same way. Nothing in the pickle is
executed: the opcodes are walked with :mod:`pickletools` and rebuilt as a graph of placeholders.
Code objects are decoded with :mod:`marshal` only when their version tag is this interpreter's.

Sizes are byte spans in the pickle stream: an object shared through the memo is counted where
it is first written, and later uses cost only the few bytes of the memo reference.
"""

import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from ._format import (
    CODE_TAG,
    CODE_TAG_SETS,
    FIELD_ANNOTATIONS,
    FIELD_ATTRS,
    FIELD_CAPTURED,
    FIELD_CELL_VALUES,
    FIELD_DEFAULTS,
    FIELD_EMPTY_CELLS,
    FIELD_EXTRA,
    FIELD_KWDEFAULTS,
    FIELD_MODULE,
    FIELD_MODULES,
    FIELD_NAME,
    FIELD_QUALNAME,
    REBUILD_CODE,
    REBUILD_DICT_VIEW,
    REBUILD_FILE_COPY,
    REBUILD_FUNCTION,
    REBUILD_IMPORT_MODULE,
    REBUILD_LRU_CACHE,
    REBUILD_MAKE_CELL,
    REBUILD_MAKE_CLASS,
    REBUILD_MAKE_MODULE,
    REBUILD_MAKE_TYPEVAR,
    REBUILD_MEMORY,
    REBUILD_NEW_TYPE,
    REBUILD_PATH,
    REBUILD_SINGLEDISPATCH,
    RECORDS,
    STATE_FIELDS,
    unseal,
)

_REBUILD = REBUILD_PATH
# Globals the pickler itself writes as machinery, not as the user's references.
# (``_codecs.encode`` is how protocols 0-2, which have no bytes opcodes, write bytes.)
_PLUMBING_MODULES = frozenset({"builtins", "copyreg", "__builtin__", "copy_reg", "_codecs",
                               _REBUILD})
_MAX_WALK = 200_000   # placeholders visited per data value when looking for functions
_MAX_SHOWN = 30       # children printed per node; the rest are summarised


# --------------------------------------------------------------------------------------------
# The result

class Node:
    """One entry of the tree: a function, class or module pickled by value, a reference
    (pickled by name), or a captured value."""

    __slots__ = ("path", "kind", "type", "size", "name", "module", "file", "line", "globals",
                 "code_tag", "variable", "shared", "children")

    def __init__(self, path: str, kind: str, type: str, size: int) -> None:
        self.path = path          # Python expression from the root
        # function | class | module | reference | code | value, or unknown: made by a
        # reconstructor this version of explain does not know (a newer fastfnpickle's pickle)
        self.kind = kind
        self.type = type          # what the pickle holds there, for display
        self.size = size          # bytes this subtree takes in the pickle
        self.name: Optional[str] = None
        self.module: Optional[str] = None
        self.file: Optional[str] = None
        self.line: Optional[int] = None
        self.globals: Optional[List[str]] = None
        self.code_tag: Optional[str] = None
        # The closure variable a cell's contents are bound to (the code's co_freevars entry),
        # on ``f.__closure__[i].cell_contents`` nodes when the code could be decoded.
        self.variable: Optional[str] = None
        self.shared = False       # a memo reference to something written elsewhere
        self.children: List["Node"] = []

    def walk(self) -> Iterator["Node"]:
        """This node and all below it, depth first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, path: str) -> Optional["Node"]:
        """The node at ``path`` (as displayed), or None."""
        for node in self.walk():
            if node.path == path:
                return node
        return None

    def to_dict(self, total: int) -> Dict[str, Any]:
        d: Dict[str, Any] = {"path": self.path, "kind": self.kind, "type": self.type,
                             "size": self.size,
                             "percent": round(100.0 * self.size / total, 2) if total else 0.0}
        for key in ("name", "module", "file", "line", "globals", "code_tag", "variable"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.shared:
            d["shared"] = True
        d["children"] = [c.to_dict(total) for c in self.children]
        return d

    def __repr__(self) -> str:
        return f"Node({self.path!r}, {self.kind}, {self.type!r}, {self.size})"


class Explanation:
    """The tree of what a pickle holds; ``str()`` renders it for a terminal."""

    def __init__(self, tree: Node, total: int, protocol: Optional[int],
                 references: List[str], source: str, unknown: Sequence[str] = ()) -> None:
        self.tree = tree
        self.total = total
        self.protocol = protocol
        self.references = references  # module.name of everything loading will import
        self.source = source
        # fastfnpickle reconstructors the pickle calls that this explain does not know
        self.unknown = sorted(unknown)

    def functions(self) -> List[Node]:
        """Every function pickled by value, in tree order."""
        return [n for n in self.tree.walk() if n.kind == "function" and not n.shared]

    def classes(self) -> List[Node]:
        """Every class pickled by value, in tree order."""
        return [n for n in self.tree.walk() if n.kind == "class" and not n.shared]

    def to_dict(self) -> Dict[str, Any]:
        def brief(n: Node) -> Dict[str, Any]:
            d: Dict[str, Any] = {"path": n.path, "name": n.name, "module": n.module,
                                 "size": n.size}
            if n.kind == "function":
                d.update(file=n.file, line=n.line, globals=n.globals, code_tag=n.code_tag)
            return d

        return {
            "source": self.source, "total_size": self.total, "protocol": self.protocol,
            "functions": [brief(n) for n in self.functions()],
            "classes": [brief(n) for n in self.classes()],
            "references": self.references, "unknown_reconstructors": self.unknown,
            "tree": self.tree.to_dict(self.total),
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        import json

        # default=repr: a damaged pickle can put bytes where a name belongs
        return json.dumps(self.to_dict(), indent=indent, default=repr)

    def __str__(self) -> str:
        return render(self)

    def __repr__(self) -> str:
        return f"<Explanation of {self.source}: {self.total} bytes>"


# --------------------------------------------------------------------------------------------
# Entry points

def explain(obj: Any, protocol: Optional[int] = None, file: Optional[TextIO] = None,
            quiet: bool = False) -> Explanation:
    """Show what pickling ``obj`` would write by value, and how many bytes each part takes.

    Returns an :class:`Explanation` (a tree of :class:`Node`, children sorted by size) and
    prints it to ``file`` (default: stdout) unless ``quiet``.
    """
    from ._impl import core  # the dump side, only when a live object is to be pickled

    data = core.dumps(obj, protocol)
    result = explain_bytes(data, source=f"a {type(obj).__name__} object")
    if not quiet:
        print(render(result), file=file if file is not None else sys.stdout)
    return result


def explain_bytes(data: bytes, source: str = "pickle") -> Explanation:
    """The :class:`Explanation` of a pickle, read without executing anything in it."""
    reader = _Reader(data)
    root = reader.run()
    try:
        tree = _TreeBuilder(reader).build(root)
    except RecursionError:
        raise ValueError("pickle nested too deeply to explain") from None
    except (IndexError, KeyError, TypeError, AttributeError, ValueError) as exc:
        # Opcodes that run but do not build what fastfnpickle writes (a damaged pickle).
        raise ValueError(f"malformed pickle: {type(exc).__name__} {exc}") from None
    return Explanation(tree, len(data), reader.protocol, sorted(reader.references), source,
                       [f"{_REBUILD}.{name}" for name in reader.unknown])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fastfnpickle explain (FILE | --object module:attr) [--json]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m fastfnpickle explain",
        description="Show what a pickle holds by value (functions, classes, what they "
                    "captured) and the bytes each part takes. FILE is read without executing "
                    "anything in it; --object imports a module and pickles one of its objects.")
    parser.add_argument("file", nargs="?", help="a pickle file ('-' for stdin)")
    parser.add_argument("--object", metavar="MODULE:ATTR",
                        help="explain a live object, e.g. mypkg.models:predict")
    parser.add_argument("--protocol", type=int, default=None,
                        help="protocol to pickle --object with (default: fastfnpickle's)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if (args.file is None) == (args.object is None):
        parser.error("give either FILE or --object MODULE:ATTR")
    try:
        if args.object is not None:
            obj = _resolve(args.object)
            result = explain(obj, args.protocol, quiet=True)
            result.source = args.object
        else:
            if args.file == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    data = f.read()
            result = explain_bytes(data, source=args.file)
    except (OSError, ValueError, ImportError, AttributeError) as exc:
        print(f"explain: {exc}", file=sys.stderr)
        return 1
    return _write_stdout(result.to_json() if args.json else render(result))


def _write_stdout(text: str) -> int:
    """Print ``text``; when the reader went away (``explain FILE | head``), stop quietly with
    the status a shell reports for a command ended by SIGPIPE, as other command-line tools do."""
    import io
    import os

    out = sys.stdout
    text += "\n"
    try:
        raw = getattr(out, "buffer", None)
        if isinstance(raw, io.RawIOBase):
            # Unbuffered (python -u, PYTHONUNBUFFERED): the text layer gives the file one
            # write and ignores a short count, which is what a pipe returns when its reader
            # leaves mid-write; the rest would be dropped without an error. Write until done.
            out.flush()
            data = memoryview(text.replace("\n", os.linesep).encode(
                out.encoding or "utf-8", out.errors or "strict"))
            while data:
                data = data[raw.write(data) or 0:]
        else:
            out.write(text)
            out.flush()
    except BrokenPipeError:
        import signal

        # The interpreter flushes stdout again on exit and would report the broken pipe then.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # stdout is no real file (replaced in-process): nothing will flush it later
        return 128 + int(getattr(signal, "SIGPIPE", 13))  # 13 where there are no signals
    return 0


def _resolve(spec: str) -> Any:
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--object expects MODULE:ATTR, got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------------------------
# Reading a pickle symbolically

class _Sym:
    """A placeholder for one object of the pickle, with the byte span that wrote it."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


class _Lit(_Sym):
    __slots__ = ("value",)

    def __init__(self, value: Any, start: int, end: int) -> None:
        super().__init__(start, end)
        self.value = value


class _Glob(_Sym):
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.module = module
        self.name = name


class _Seq(_Sym):
    """list, tuple, set or frozenset."""

    __slots__ = ("kind", "items")

    def __init__(self, kind: str, items: List[_Sym], start: int, end: int) -> None:
        super().__init__(start, end)
        self.kind = kind
        self.items = items


class _Map(_Sym):
    __slots__ = ("items",)

    def __init__(self, items: List[Tuple[_Sym, _Sym]], start: int, end: int) -> None:
        super().__init__(start, end)
        self.items = items


class _Call(_Sym):
    """An object built by calling something: REDUCE, NEWOBJ, INST, OBJ."""

    __slots__ = ("func", "args", "kwargs", "state", "items", "setitems", "setter_state",
                 "instance")

    def __init__(self, func: _Sym, args: Optional[_Sym], start: int, end: int,
                 instance: bool = False) -> None:
        super().__init__(start, end)
        self.func = func
        self.args = args
        self.instance = instance  # ``func`` is the class of the object made (NEWOBJ, ...)
        self.kwargs: Optional[_Sym] = None
        self.state: Optional[_Sym] = None
        self.items: List[_Sym] = []
        self.setitems: List[Tuple[_Sym, _Sym]] = []
        self.setter_state: Optional[_Sym] = None  # fastfnpickle's set_*_state argument


class _Ref(_Sym):
    """A memo reference: the same object again."""

    __slots__ = ("target",)

    def __init__(self, target: _Sym, start: int, end: int) -> None:
        super().__init__(start, end)
        self.target = target


class _Opaque(_Sym):
    __slots__ = ("what",)

    def __init__(self, what: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.what = what


def _deref(s: Any) -> Any:
    return s.target if type(s) is _Ref else s


_LITERAL_OPS = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT",
})
# What explain knows of each reconstructor (``_format.RECONSTRUCTORS``): what a call to it
# makes, as displayed. A name missing here is shown as an unknown reconstructor.
# What each reconstructor makes, and those that fill in an object made earlier:
# ``setter(obj, state)``. ``function`` both makes a function (5 arguments) and fills one
# (2 arguments); so does ``make_class``. Both read from the wire-format declaration.
_KNOWN: Dict[str, str] = {name: record.makes for name, record in RECORDS.items()}
_SETTERS = frozenset(name for name, record in RECORDS.items() if record.fills)
# The two uses of those double reconstructors, as _rebuild_name tells them apart. The suffix
# keeps them from ever meaning a reconstructor of that name.
_NEW_FUNCTION = REBUILD_FUNCTION + ":new"
_FILL_FUNCTION = REBUILD_FUNCTION + ":fill"
_NEW_CLASS = REBUILD_MAKE_CLASS
_FILL_CLASS = REBUILD_MAKE_CLASS + ":fill"


class _Reader:
    """Runs the pickle's opcodes on placeholders instead of objects."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.protocol: Optional[int] = None
        self.references: set = set()
        self.unknown: set = set()  # names called in _rebuild that explain does not know

    def run(self) -> _Sym:
        import pickletools
        import warnings

        try:
            with warnings.catch_warnings():
                # pickletools decodes protocol-0 strings with escape_decode, which warns about
                # bad escapes in damaged input: the ValueError below is the answer to that.
                warnings.simplefilter("ignore", DeprecationWarning)
                ops = list(pickletools.genops(self.data))
        except Exception as exc:  # genops raises ValueError and friends on bad input
            raise ValueError(f"not a readable pickle: {exc}") from None
        if not ops or ops[-1][0].name != "STOP":
            raise ValueError("not a readable pickle: no STOP opcode")
        try:
            return self._execute(ops)
        except (IndexError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed pickle: {type(exc).__name__} {exc}") from None

    def _execute(self, ops: List[Tuple[Any, Any, Optional[int]]]) -> _Sym:
        stack: List[Any] = []
        marks: List[Tuple[List[Any], int]] = []
        memo: Dict[Any, _Sym] = {}
        n = len(ops)

        def pop_mark() -> Tuple[List[Any], int]:
            nonlocal stack
            items = stack
            stack, mark_pos = marks.pop()
            return items, mark_pos

        for i in range(n):
            op, arg, pos = ops[i]
            pos = pos or 0
            end = (ops[i + 1][2] or 0) if i + 1 < n else pos + 1
            name = op.name
            if name in _LITERAL_OPS:
                stack.append(_Lit(arg, pos, end))
            elif name == "MEMOIZE":
                top = stack[-1]
                memo[len(memo)] = _deref(top)
                top.end = end
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                top = stack[-1]
                memo[arg] = _deref(top)
                top.end = end
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(_Ref(memo[arg], pos, end))
            elif name in ("FRAME", "READONLY_BUFFER"):
                pass
            elif name == "PROTO":
                self.protocol = arg
            elif name == "MARK":
                marks.append((stack, pos))
                stack = []
            elif name == "STOP":
                return stack.pop()
            elif name == "NONE":
                stack.append(_Lit(None, pos, end))
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(_Lit(name == "NEWTRUE", pos, end))
            elif name == "BYTEARRAY8":
                stack.append(_Lit(bytearray(arg), pos, end))
            elif name == "NEXT_BUFFER":
                stack.append(_Opaque("out-of-band buffer", pos, end))
            elif name in ("EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_SET"):
                kind = {"EMPTY_LIST": "list", "EMPTY_TUPLE": "tuple", "EMPTY_SET": "set"}[name]
                stack.append(_Seq(kind, [], pos, end))
            elif name == "EMPTY_DICT":
                stack.append(_Map([], pos, end))
            elif name in ("LIST", "TUPLE", "FROZENSET"):
                items, mark_pos = pop_mark()
                stack.append(_Seq(name.lower(), items, mark_pos, end))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(name[-1])
                items = stack[-k:]
                del stack[-k:]
                stack.append(_Seq("tuple", items, items[0].start, end))
            elif name == "DICT":
                items, mark_pos = pop_mark()
                stack.append(_Map(list(zip(items[::2], items[1::2], strict=False)), mark_pos,
                                     end))
            elif name == "APPEND":
                value = stack.pop()
                self._append(stack[-1], [value], end)
            elif name in ("APPENDS", "ADDITEMS"):
                items, _ = pop_mark()
                self._append(stack[-1], items, end)
            elif name == "SETITEM":
                value = stack.pop()
                key = stack.pop()
                self._setitems(stack[-1], [(key, value)], end)
            elif name == "SETITEMS":
                items, _ = pop_mark()
                self._setitems(stack[-1], list(zip(items[::2], items[1::2], strict=False)),
                               end)
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "GLOBAL":
                module, _, qualname = str(arg).partition(" ")
                stack.append(self._global(module, qualname, pos, end))
            elif name == "STACK_GLOBAL":
                qualname = stack.pop()
                module = stack.pop()
                start = min(module.start, qualname.start)
                stack.append(self._global(str(getattr(_deref(module), "value", "?")),
                                          str(getattr(_deref(qualname), "value", "?")),
                                          start, end))
            elif name in ("EXT1", "EXT2", "EXT4"):
                stack.append(_Opaque(f"extension code {arg}", pos, end))
            elif name == "REDUCE":
                args = stack.pop()
                func = stack.pop()
                stack.append(self._reduce(func, args, end))
            elif name == "BUILD":
                state = stack.pop()
                target = _deref(stack[-1])
                if type(target) is _Call:
                    target.state = state
                stack[-1].end = end
            elif name == "NEWOBJ":
                args = stack.pop()
                cls = stack.pop()
                stack.append(_Call(cls, args, cls.start, end, instance=True))
            elif name == "NEWOBJ_EX":
                kwargs = stack.pop()
                args = stack.pop()
                cls = stack.pop()
                call = _Call(cls, args, cls.start, end, instance=True)
                call.kwargs = kwargs
                stack.append(call)
            elif name == "INST":
                items, mark_pos = pop_mark()
                module, _, qualname = str(arg).partition(" ")
                cls = self._global(module, qualname, pos, end)
                stack.append(_Call(cls, _Seq("tuple", items, mark_pos, end), mark_pos, end,
                                   instance=True))
            elif name == "OBJ":
                items, mark_pos = pop_mark()
                stack.append(_Call(items[0], _Seq("tuple", items[1:], mark_pos, end),
                                   mark_pos, end, instance=True))
            elif name in ("PERSID", "BINPERSID"):
                if name == "BINPERSID":
                    stack.pop()
                stack.append(_Opaque("persistent id", pos, end))
            else:
                raise ValueError(f"unsupported opcode {name}")
        raise ValueError("no STOP opcode")

    def _global(self, module: str, qualname: str, start: int, end: int) -> _Glob:
        if module not in _PLUMBING_MODULES:
            self.references.add(f"{module}.{qualname}")
        elif module == _REBUILD and qualname not in _KNOWN:
            self.unknown.add(qualname)
        return _Glob(module, qualname, start, end)

    def _reduce(self, func: Any, args: Any, end: int) -> _Sym:
        f = _deref(func)
        if type(f) is _Glob and f.module == "_codecs" and f.name == "encode":
            # Bytes below protocol 3: encode(text, "latin1"). Read them as the bytes they are,
            # so code objects decode and sizes describe bytes.
            a = _items(args)
            if len(a) == 2 and type(_lit(a[0])) is str and _lit(a[1]) == "latin1":
                return _Lit(_lit(a[0]).encode("latin1"), func.start, end)
        call = _Call(func, args, func.start, end)
        if type(f) is _Glob and f.module == _REBUILD:
            a = _deref(args)
            if f.name in _SETTERS and type(a) is _Seq and len(a.items) == 2:
                target = _deref(a.items[0])
                if type(target) is _Call:
                    target.setter_state = a.items[1]
                    target.end = end  # the object's span runs to the end of its state
            elif f.name == REBUILD_IMPORT_MODULE and type(a) is _Seq and a.items:
                module = _deref(a.items[0])
                if type(module) is _Lit:
                    self.references.add(str(module.value))
        return call

    @staticmethod
    def _append(target: Any, items: List[Any], end: int) -> None:
        t = _deref(target)
        if type(t) is _Seq:
            t.items.extend(items)
        elif type(t) is _Call:
            t.items.extend(items)
        target.end = end

    @staticmethod
    def _setitems(target: Any, pairs: List[Tuple[Any, Any]], end: int) -> None:
        t = _deref(target)
        if type(t) is _Map:
            t.items.extend(pairs)
        elif type(t) is _Call:
            t.setitems.extend(pairs)
        target.end = end


# --------------------------------------------------------------------------------------------
# From placeholders to the tree

def _rebuild_name(call: Any) -> Optional[str]:
    """What ``call`` makes when it calls one of fastfnpickle's reconstructors: the name in
    ``_rebuild``, or ``_NEW_FUNCTION`` / ``_FILL_FUNCTION`` / ``_FILL_CLASS`` for the uses of
    the double ones."""
    if type(call) is not _Call:
        return None
    f = _deref(call.func)
    if type(f) is _Glob and f.module == _REBUILD:
        if f.name == REBUILD_FUNCTION:
            return _NEW_FUNCTION if len(_items(call.args)) >= 3 else _FILL_FUNCTION
        if f.name == REBUILD_MAKE_CLASS and len(_items(call.args)) < 3:
            return _FILL_CLASS
        return f.name
    return None


def _state_fields(state: Any) -> Optional[Dict[str, Any]]:
    """A function state (``_format.STATE_FIELDS``, trailing Nones dropped) by field name."""
    items = _items(state)
    if len(items) > len(STATE_FIELDS) or (not items and type(_deref(state)) is not _Seq):
        return None
    fields: Dict[str, Any] = dict.fromkeys(STATE_FIELDS)
    fields.update(zip(STATE_FIELDS, items, strict=False))  # trailing Nones were dropped
    return fields


def _unknown(rebuild: str) -> bool:
    return rebuild.partition(":")[0] not in _KNOWN


def _items(s: Any) -> List[Any]:
    s = _deref(s)
    return s.items if type(s) in (_Seq, _Map) else []


def _lit(s: Any, default: Any = None) -> Any:
    s = _deref(s)
    return s.value if type(s) is _Lit else default


def _key_label(key: Any, i: int) -> str:
    k = _deref(key)
    if type(k) is _Lit and type(k.value) in (str, int, bytes, bool, float, type(None)):
        text = repr(k.value)
        if len(text) <= 60:
            return f"[{text}]"
    return f".<value {i}>"


def _describe(s: Any) -> str:
    """What a placeholder stands for, in a few words."""
    s = _deref(s)
    t = type(s)
    if t is _Lit:
        v = s.value
        if type(v) in (str, bytes, bytearray):
            return f"{type(v).__name__} of {len(v)}"
        return type(v).__name__
    if t is _Seq:
        return f"{s.kind} of {len(s.items)}"
    if t is _Map:
        return f"dict of {len(s.items)}"
    if t is _Glob:
        return f"{s.module}.{s.name}"
    if t is _Call:
        rebuild = _rebuild_name(s)
        if rebuild is not None:
            if _unknown(rebuild):
                return f"unknown reconstructor {_REBUILD}.{rebuild}"
            return _describe_rebuilt(rebuild, s)
        f = _deref(s.func)
        args = _items(s.args)
        first = _deref(args[0]) if args else None
        if type(f) is _Glob and f.module == "copyreg" and type(first) is _Glob:
            return f"{first.module}.{first.name}"  # copyreg._reconstructor / __newobj__
        array = _numpy_array(s)
        if array is not None:
            return array
        if type(f) is _Glob and f.module == "builtins":
            if f.name == "getattr":
                named = _callable_name(s)
                if named is not None:
                    return named
            if f.name in ("set", "frozenset") and len(args) == 1 and \
                    type(_deref(args[0])) is _Seq:
                return f"{f.name} of {len(_deref(args[0]).items)}"
        named = _callable_name(f)
        if named is not None:
            return f"{named}(...)"
        cls = _instance_class(s)
        if cls is not None and _rebuild_name(cls) == _NEW_CLASS:
            return f"{_class_name(cls)}(...)"  # an instance of a class pickled by value
        return "object"
    if t is _Opaque:
        return s.what
    return "object"


def _describe_rebuilt(rebuild: str, call: _Call) -> str:
    """What a known reconstructor makes, with the details its arguments give."""
    parts = _items(call.args)
    args = [_lit(a) for a in parts]
    if rebuild == REBUILD_MEMORY and len(args) >= 3:  # (bytes, format, shape, readonly)
        return f"memoryview {args[1]} {_shape(parts[2])}"
    if rebuild == REBUILD_FILE_COPY and args and type(args[0]) in (str, bytes):
        kind, unit = (("io.StringIO", "chars") if type(args[0]) is str
                      else ("io.BytesIO", "bytes"))
        return f"{kind} copy of {len(args[0])} {unit}"
    if rebuild == REBUILD_NEW_TYPE and len(args) >= 4 and type(args[2]) is str:
        return f"NewType {args[3]}.{args[2]}" if type(args[3]) is str else f"NewType {args[2]}"
    if rebuild == REBUILD_LRU_CACHE and len(args) >= 2:
        return f"lru_cache wrapper (maxsize {args[1]})"
    return _KNOWN[rebuild.partition(":")[0]]


def _getattr_call(call: "_Call") -> Optional[Tuple[Any, str]]:
    """(owner, attribute name) of a ``builtins.getattr(owner, "name")`` call, else None."""
    f = _deref(call.func)
    args = _items(call.args)
    if not (type(f) is _Glob and f.module == "builtins" and f.name == "getattr"
            and len(args) == 2 and type(_lit(args[1])) is str):
        return None
    return _deref(args[0]), _lit(args[1])


def _callable_name(s: Any) -> Optional[str]:
    """``module.name`` of what a placeholder names: a global, or an attribute of one (or of a
    module or class) fetched with ``getattr``, as pickles name ``types.MethodType``."""
    s = _deref(s)
    if type(s) is _Glob:
        return f"{s.module}.{s.name}"
    if type(s) is not _Call:
        return None
    fetched = _getattr_call(s)
    if fetched is None:
        return None
    owner, attr = fetched
    rebuild = _rebuild_name(owner)
    if rebuild == REBUILD_IMPORT_MODULE and type(_lit(_items(owner.args)[0])) is str:
        base: Optional[str] = _lit(_items(owner.args)[0])
    elif rebuild == _NEW_CLASS:
        base = _class_name(owner)
    else:
        base = _callable_name(owner)
    return None if base is None else f"{base}.{attr}"


def _named_reference(s: Any) -> Optional[Tuple[str, str]]:
    """(``module.name``, module) of an attribute of a module or global fetched with
    ``getattr`` (``dataclasses.MISSING``, ``builtins.object.__setattr__``): a reference loading
    resolves by importing, like a global."""
    s = _deref(s)
    if type(s) is not _Call or s.instance:
        return None
    fetched = _getattr_call(s)
    if fetched is None:
        return None
    owner, attr = fetched
    if type(owner) is _Glob:
        return f"{owner.module}.{owner.name}.{attr}", owner.module
    if _rebuild_name(owner) == REBUILD_IMPORT_MODULE:
        module = _lit(_items(owner.args)[0]) if _items(owner.args) else None
        if type(module) is str:
            return f"{module}.{attr}", module
    if type(owner) is _Call:
        inner = _named_reference(owner)
        if inner is not None:
            return f"{inner[0]}.{attr}", inner[1]
    return None


# The arguments of well-known constructors as attributes of what they make, so paths through
# them can be pasted: ``C.prop.fget`` rather than ``C.prop.<arg 0>``. "" passes a mapping's
# items through (``proxy['k']``).
_ARG_LABELS: Dict[str, Tuple[str, ...]] = {
    "builtins.property": (".fget", ".fset", ".fdel", ".__doc__"),
    "builtins.classmethod": (".__func__",),
    "builtins.staticmethod": (".__func__",),
    "functools.cached_property": (".func",),
    "functools.partial": (".func",),
    "types.MethodType": (".__func__", ".__self__"),
    "types.MappingProxyType": ("",),
    f"{_REBUILD}.{REBUILD_LRU_CACHE}": (".__wrapped__",),  # (func, maxsize, typed)
    f"{_REBUILD}.{REBUILD_SINGLEDISPATCH}": (".__wrapped__",),  # (func,)
    f"{_REBUILD}.{REBUILD_NEW_TYPE}": ("", ".__supertype__"),  # (name, supertype, ...)
    # (kind, name, bound, constraints, 3 variance flags, id, module[, default]); older pickles
    # end at the id
    f"{_REBUILD}.{REBUILD_MAKE_TYPEVAR}": (".__class__", ".__name__", ".__bound__",
                                          ".__constraints__", ".__covariant__",
                                          ".__contravariant__", ".__infer_variance__", ".<id>",
                                          ".__module__", ".__default__"),
}
# Reconstructors whose arguments are plain data (bytes, text), summed up in the description.
_DATA_ONLY = frozenset({REBUILD_MEMORY, REBUILD_FILE_COPY})
# functools.partial's state: (func, args, keywords, __dict__); func is the argument again.
_PARTIAL_STATE = ("", ".args", ".keywords", ".__dict__")


def _instance_class(call: _Call) -> Any:
    """The class ``call`` makes an instance of, when the pickle says so, else None."""
    if call.instance:
        return _deref(call.func)
    f = _deref(call.func)
    args = _items(call.args)
    if type(f) is _Glob and f.module == "copyreg" and args:
        return _deref(args[0])  # copyreg._reconstructor / __newobj__ / __newobj_ex__
    return None


def _class_name(make_class: _Call) -> str:
    """``module.qualname`` of a class pickled by value."""
    args = _items(make_class.args)
    skeleton = dict((_lit(k), v) for k, v in _items(args[3])) if len(args) > 3 else {}
    name = _lit(skeleton.get("__qualname__")) or (_lit(args[1]) if len(args) > 1 else None)
    module = _lit(skeleton.get("__module__"))
    return f"{module}.{name}" if module else str(name)


def _numpy_array(call: _Call) -> Optional[str]:
    """``numpy.ndarray f8 (1000,)`` for a numpy array, from what its reduction names."""
    f = _deref(call.func)
    if not (type(f) is _Glob and f.module.partition(".")[0] == "numpy"):
        return None
    args = _items(call.args)
    if f.name == "_frombuffer" and len(args) >= 3:  # protocol 5: (buffer, dtype, shape, order)
        dtype, shape = args[1], args[2]
    elif f.name == "_reconstruct":  # below 5: BUILD with (version, shape, dtype, fortran, data)
        state = _items(call.state)
        if len(state) < 5:
            return "numpy.ndarray"
        dtype, shape = state[2], state[1]
    else:
        return None
    code = _items(_deref(dtype).args)[:1] if type(_deref(dtype)) is _Call else []
    text = "numpy.ndarray"
    if code and type(_lit(code[0])) is str:
        text += " " + _lit(code[0])
    return f"{text} {_shape(shape)}".rstrip()


def _shape(shape: Any) -> str:
    """A shape tuple as Python writes it, ``(1000,)``; "" when it is not all ints."""
    dims = [_lit(d) for d in _items(shape)]
    if not all(type(d) is int for d in dims):
        return ""
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def _numpy_children(call: _Call) -> Optional[List[Tuple[str, Any]]]:
    """The parts of a numpy array worth showing: the elements of an object array (the raw
    bytes and dtype of other arrays hold nothing pickled by value); None if not an array."""
    if _numpy_array(call) is None:
        return None
    state = _items(call.state)
    if len(state) < 5 or type(_deref(state[4])) is not _Seq:
        return []
    order = ".T.flat" if _lit(state[3]) else ".flat"  # the data is in the array's own order
    return [(f"{order}[{i}]", v) for i, v in enumerate(_deref(state[4]).items)]


class _TreeBuilder:
    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.expanded: set = set()  # ids of placeholders already shown with their children

    def build(self, root: _Sym) -> Node:
        name = "obj"
        r = _deref(root)
        rebuild = _rebuild_name(r)
        if rebuild in (_NEW_FUNCTION, _NEW_CLASS):
            shown = self._function_info(r)[0] if rebuild == _NEW_FUNCTION else (
                _lit(_items(r.args)[1]) if len(_items(r.args)) > 1 else None)
            last = shown.rpartition(".")[2] if type(shown) is str else ""
            if last.isidentifier():
                name = last
        node = self._node(root, name, top=True)
        node.size = len(self.reader.data)  # the whole pickle, with its header and STOP
        return node

    # One node per placeholder that the tree shows.
    def _node(self, occ: Any, path: str, top: bool = False) -> Node:
        s = _deref(occ)
        size = occ.end - occ.start
        rebuild = _rebuild_name(s)
        shared = type(occ) is _Ref or id(s) in self.expanded
        named = _named_reference(s) if rebuild is None else None
        if rebuild == _NEW_FUNCTION:
            node = Node(path, "function", "function", size)
            self._fill_function(node, s, shared)
        elif rebuild == _NEW_CLASS:
            node = Node(path, "class", "class", size)
            self._fill_class(node, s, shared)
        elif rebuild == REBUILD_MAKE_MODULE:
            node = Node(path, "module", "module", size)
            args = _items(s.args)
            node.name = _lit(args[0]) if args else None
            if not shared:
                if len(args) > 1:  # a ModuleType subclass
                    node.children.append(self._node(args[1], path + ".__class__"))
                self._expand_map(node, s.setter_state, path, ".{}")
        elif rebuild == REBUILD_IMPORT_MODULE:
            node = Node(path, "reference", "module", size)
            node.name = _lit(_items(s.args)[0]) if _items(s.args) else None
        elif type(s) is _Glob:
            node = Node(path, "reference", "global", size)
            node.name = f"{s.module}.{s.name}"
            node.module = s.module
        elif named is not None:
            node = Node(path, "reference", "global", size)
            node.name, node.module = named
        elif rebuild == REBUILD_CODE:
            node = Node(path, "code", "code", size)
            tag = _lit(_items(s.args)[0]) if _items(s.args) else None
            node.code_tag = tag.split("+")[0] if type(tag) is str else None
        else:
            kind = "unknown" if rebuild is not None and _unknown(rebuild) else "value"
            node = Node(path, kind, _describe(s), size)
            if not shared:
                self.expanded.add(id(s))
                if top:
                    for label, child in _data_children(s):
                        node.children.append(self._node(child, path + label))
                else:
                    for label, child in self._interesting(s):
                        node.children.append(self._node(child, path + label))
        node.shared = shared and node.kind in ("function", "class", "module", "value",
                                               "unknown")
        node.children.sort(key=lambda c: (-c.size, c.path))
        return node

    def _function_info(self, call: _Call) -> Tuple[Optional[str], Optional[str],
                                                   Optional[str], Optional[int], Optional[str],
                                                   Tuple[str, ...]]:
        """(qualname, module, file, line, code tag, closure variable names) of a by-value
        function; the names are empty when the code could not be decoded.

        The function is ``function(tag, code_bytes, filename, globals, closure)`` filled in by
        ``function(func, state)`` with the state of ``_core_py.reduce_function``.
        """
        args = _items(call.args)
        state = _state_fields(call.setter_state)
        qualname = module = filename = None
        line = None
        freevars: Tuple[str, ...] = ()
        tag = _lit(args[0]) if args else None
        blob = _lit(args[1]) if len(args) > 1 else None
        if tag in (CODE_TAG, CODE_TAG_SETS) and isinstance(blob, bytes):
            info = _code_info(blob)
            if info is not None:
                qualname, filename, line, freevars = info
        if len(args) > 2 and type(_lit(args[2])) is str:
            filename = _lit(args[2])  # the marshalled code holds "" instead
        if state is not None:
            if type(_lit(state[FIELD_QUALNAME])) is str:
                qualname = _lit(state[FIELD_QUALNAME])
            elif qualname is not None and type(_lit(state[FIELD_NAME])) is str:
                qualname = (qualname.rpartition(".")[0] + "."
                            + _lit(state[FIELD_NAME])).lstrip(".")
            boxed = _items(state[FIELD_MODULE])  # (module,) when it differs from the globals'
            if boxed and type(_lit(boxed[0])) is str:
                module = _lit(boxed[0])
        if module is None and len(args) > 3:
            for k, v in _items(args[3]):
                if _lit(k) == "__name__" and type(_lit(v)) is str:
                    module = _lit(v)
        if type(tag) is str:
            tag = tag.split("+")[0]
        return qualname, module, filename, line, tag, freevars

    def _fill_function(self, node: Node, call: _Call, shared: bool) -> None:
        qualname, module, filename, line, tag, freevars = self._function_info(call)
        node.name = qualname if qualname is not None else f"<code for Python {tag}>"
        node.module = module
        node.file = filename
        node.line = line
        node.code_tag = tag
        state = _state_fields(call.setter_state)
        node.globals = [str(_lit(k)) for k, _ in _items(state[FIELD_CAPTURED])
                        + _items(state[FIELD_MODULES])] if state else []
        node.type = "function"
        if shared:
            return
        self.expanded.add(id(call))
        path = node.path
        args = _items(call.args)
        if len(args) > 1:
            code = Node(path + ".__code__", "code", "code", args[1].end - args[0].start)
            code.code_tag = node.code_tag
            node.children.append(code)
        if state is None:
            return
        for k, v in _items(state[FIELD_CAPTURED]):
            node.children.append(self._node(v, f"{path}.__globals__[{_lit(k)!r}]"))
        for k, v in _items(state[FIELD_MODULES]):  # imported by name on load
            ref = Node(f"{path}.__globals__[{_lit(k)!r}]", "reference", "module",
                       v.end - v.start)
            ref.name = _lit(v)
            node.children.append(ref)
            if type(ref.name) is str:
                self.reader.references.add(ref.name)
        for i, v in enumerate(_items(state[FIELD_DEFAULTS])):
            node.children.append(self._node(v, f"{path}.__defaults__[{i}]"))
        for k, v in _items(state[FIELD_KWDEFAULTS]):
            node.children.append(self._node(v, f"{path}.__kwdefaults__[{_lit(k)!r}]"))
        empty = {_lit(e) for e in _items(state[FIELD_EMPTY_CELLS])}
        for i, v in enumerate(_items(state[FIELD_CELL_VALUES])):
            if i not in empty:
                cell = self._node(v, f"{path}.__closure__[{i}].cell_contents")
                # co_freevars names the cells in __closure__ order
                cell.variable = freevars[i] if i < len(freevars) else None
                node.children.append(cell)
        annotations = state[FIELD_ANNOTATIONS]
        if annotations is not None and type(_deref(annotations)) is not _Lit:
            # A dict, or on 3.14+ the __annotate__ function that computes it (_deferred.py).
            label = ".__annotations__" if type(_deref(annotations)) is _Map else ".__annotate__"
            node.children.append(self._node(annotations, path + label))
        for k, v in _items(state[FIELD_ATTRS]):
            node.children.append(self._node(v, f"{path}.{_lit(k)}"))
        extra = _items(state[FIELD_EXTRA])
        if extra and type(_deref(extra[0])) is not _Lit:
            node.children.append(self._node(extra[0], path + ".__type_params__"))

    def _fill_class(self, node: Node, call: _Call, shared: bool) -> None:
        args = _items(call.args)
        skeleton = dict((_lit(k), v) for k, v in _items(args[3])) if len(args) > 3 else {}
        node.name = _lit(skeleton.get("__qualname__")) or (_lit(args[1]) if len(args) > 1
                                                           else None)
        node.module = _lit(skeleton.get("__module__"))
        if shared:
            return
        self.expanded.add(id(call))
        path = node.path
        if args:
            meta = _deref(args[0])
            if not (type(meta) is _Glob and meta.module == "builtins") and not (
                    type(meta) is _Lit and meta.value is None):
                node.children.append(self._node(args[0], f"type({path})"))
        if len(args) > 2:
            for i, base in enumerate(_items(args[2])):
                b = _deref(base)
                if not (type(b) is _Glob and b.module == "builtins"):
                    node.children.append(self._node(base, f"{path}.__bases__[{i}]"))
        for key, value in skeleton.items():
            if key not in ("__module__", "__qualname__"):
                node.children.append(self._node(value, _member_path(path, key, value)))
        state = _items(call.setter_state)
        if state:
            for k, v in _items(state[0]):
                node.children.append(self._node(v, _member_path(path, _lit(k), v)))

    def _expand_map(self, node: Node, mapping: Any, path: str, fmt: str) -> None:
        for k, v in _items(mapping):
            node.children.append(self._node(v, path + fmt.format(_lit(k))))

    def _interesting(self, root: _Sym) -> List[Tuple[str, Any]]:
        """Functions, classes, modules and references inside a data value, with their paths."""
        found: List[Tuple[str, Any]] = []
        stack: List[Tuple[str, Any]] = list(reversed(_data_children(root)))
        seen = {id(root)}
        budget = _MAX_WALK
        while stack and budget > 0:
            budget -= 1
            label, occ = stack.pop()
            s = _deref(occ)
            rebuild = _rebuild_name(s)
            if rebuild in (_NEW_FUNCTION, _NEW_CLASS, REBUILD_MAKE_MODULE,
                           REBUILD_IMPORT_MODULE) or (
                    rebuild is not None and _unknown(rebuild)) or (
                    type(s) is _Glob and s.module not in _PLUMBING_MODULES) or (
                    _named_reference(s) is not None):
                found.append((label, occ))
                continue
            if type(occ) is _Ref or id(s) in seen:
                continue  # data already walked where it was first written
            seen.add(id(s))
            for child_label, child in reversed(_data_children(s)):
                stack.append((label + child_label, child))
        return found


def _member_path(cls_path: str, key: Any, value: Any) -> str:
    """``C.key``, or ``C.__dict__['key']`` where reading the attribute from the class gives
    something else: staticmethod and classmethod objects unwrap to their function."""
    v = _deref(value)
    if type(key) is not str or not key.isidentifier() or (
            type(v) is _Call and _callable_name(v.func) in ("builtins.staticmethod",
                                                            "builtins.classmethod")):
        return f"{cls_path}.__dict__[{key!r}]"
    return f"{cls_path}.{key}"


def _data_children(s: Any) -> List[Tuple[str, Any]]:
    """The parts of a data placeholder, with display labels."""
    s = _deref(s)
    t = type(s)
    out: List[Tuple[str, Any]] = []
    if t is _Seq:
        if s.kind in ("set", "frozenset"):
            out = [(f".<item {i}>", v) for i, v in enumerate(s.items)]
        else:
            out = [(f"[{i}]", v) for i, v in enumerate(s.items)]
    elif t is _Map:
        for i, (k, v) in enumerate(s.items):
            if type(_deref(k)) is not _Lit:
                out.append((f".<key {i}>", k))
            out.append((_key_label(k, i), v))
    elif t is _Call:
        rebuild = _rebuild_name(s)
        if rebuild == REBUILD_MAKE_CELL:
            out.extend((".cell_contents", v) for v in _items(s.setter_state)[:1])
            return out
        if rebuild == REBUILD_DICT_VIEW:
            out.extend(("", v) for v in _items(s.args)[:1])
            return out
        if rebuild in _DATA_ONLY:
            return out
        if rebuild == REBUILD_SINGLEDISPATCH:
            # The base function, then the setter's ((cls, impl), ...) registrations.
            out.extend((".__wrapped__", v) for v in _items(s.args)[:1])
            state = _items(s.setter_state)
            for i, pair in enumerate(_items(state[0]) if state else ()):
                cls, impl = (_items(pair) + [None, None])[:2]
                key = _callable_name(cls)  # None for a class pickled by value
                if key is not None and key.startswith("builtins."):
                    key = key[len("builtins."):]
                if key is None:
                    out.append((f".<registered {i}>", pair))
                else:
                    out.append((f".registry[{key}]", impl))
            if len(state) > 1:
                out.extend(_state_parts(state[1]))
            return out
        array = _numpy_children(s)
        if array is not None:
            return array
        f = _deref(s.func)
        named = _callable_name(f)
        if s.instance or _rebuild_name(f) == _NEW_CLASS:
            out.append((".__class__", s.func))  # calling a class makes one of its instances
        elif not (type(f) is _Glob and f.module in _PLUMBING_MODULES) and named is None:
            out.append((".<constructor>", s.func))  # (a named callable is in the description)
        labels = _ARG_LABELS.get(named or "", ())
        for i, v in enumerate(_items(s.args)):
            if i == 0 and type(f) is _Glob and f.module == "copyreg":
                if type(_deref(v)) is not _Glob:  # a Glob is named in the description
                    out.append((".__class__", v))
                continue
            out.append((labels[i] if i < len(labels) else f".<arg {i}>", v))
        state = _deref(s.state)
        if named == "functools.partial" and type(state) is _Seq and \
                len(state.items) == len(_PARTIAL_STATE):
            pairs = zip(_PARTIAL_STATE, state.items, strict=True)
            out.extend((label, part) for label, part in pairs if label)
        else:
            for label, part in _state_parts(s.state):
                out.append((label, part))
        out.extend((f"[{i}]", v) for i, v in enumerate(s.items))
        out.extend((_key_label(k, i), v) for i, (k, v) in enumerate(s.setitems))
    return out


def _state_parts(state: Any) -> List[Tuple[str, Any]]:
    if state is None:
        return []
    st = _deref(state)
    if type(st) is _Map:
        return [(f".{_lit(k)}" if type(_lit(k)) is str else f".<state {i}>", v)
                for i, (k, v) in enumerate(st.items)]
    if type(st) is _Seq and st.kind == "tuple" and len(st.items) == 2:
        parts = []
        for half in st.items:
            if type(_deref(half)) is _Map:
                parts.extend(_state_parts(half))
        return parts
    return [(".<state>", state)]


def _code_info(blob: bytes) -> Optional[Tuple[str, str, int, Tuple[str, ...]]]:
    import marshal
    from types import CodeType

    try:
        code = marshal.loads(unseal(blob))
    except Exception:
        return None
    if type(code) is not CodeType:
        return None
    return (getattr(code, "co_qualname", code.co_name), code.co_filename, code.co_firstlineno,
            code.co_freevars)


# --------------------------------------------------------------------------------------------
# Text output

def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    for unit in ("kB", "MB", "GB"):
        n_f = n / 1024.0
        if n_f < 1024 or unit == "GB":
            return f"{n_f:.1f} {unit}"
        n = int(n_f)
    return f"{n} B"


def _line(node: Node, total: int) -> str:
    pct = f"{100.0 * node.size / total:5.1f}%" if total else ""
    if node.kind == "function":
        what = f"function {node.module}.{node.name}" if node.module else f"function {node.name}"
        if node.code_tag and node.code_tag != CODE_TAG:
            where = f"{node.file}, " if node.file else ""
            what += f"  ({where}code for Python {node.code_tag}, not decoded)"
        elif node.file:
            what += f"  ({node.file}:{node.line})"
    elif node.kind == "class":
        what = f"class {node.module}.{node.name}"
    elif node.kind == "module":
        what = f"module {node.name} (by value)"
    elif node.kind == "reference":
        what = f"reference to {node.type} {node.name}"
    elif node.kind == "code":
        what = f"code (Python {node.code_tag})"
    else:
        what = node.type
    if node.shared:
        what += "  (memo reference: written above)"
    path = node.path if node.variable is None else f"{node.path} ({node.variable})"
    return f"{path}  {what}  {_size(node.size)} {pct}".rstrip()


def render(result: Explanation) -> str:
    """The tree as indented text, biggest parts first."""
    total = result.total
    lines = [f"{result.source}: {_size(total)} pickle"
             + (f", protocol {result.protocol}" if result.protocol is not None else "")]
    lines.append(_line(result.tree, total))

    def add(node: Node, indent: str) -> None:
        kids = node.children
        shown = kids[:_MAX_SHOWN]
        rest = kids[_MAX_SHOWN:]
        for i, child in enumerate(shown):
            last = i == len(shown) - 1 and not rest
            lines.append(indent + ("`-- " if last else "|-- ") + _line(child, total))
            add(child, indent + ("    " if last else "|   "))
        if rest:
            lines.append(indent + f"`-- ... {len(rest)} more, "
                         f"{_size(sum(c.size for c in rest))} together")

    add(result.tree, "")
    funcs = result.functions()
    lines.append(f"{len(funcs)} function(s) and {len(result.classes())} class(es) by value")
    if result.references:
        lines.append("loading imports: " + ", ".join(result.references))
    if result.unknown:
        lines.append("unknown reconstructors (a newer fastfnpickle made this pickle?): "
                     + ", ".join(result.unknown))
    return "\n".join(lines)
