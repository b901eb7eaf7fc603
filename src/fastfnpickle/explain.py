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

from ._format import CODE_TAG, CODE_TAG_SETS, STATE_FIELDS, unseal

_REBUILD = "fastfnpickle._rebuild"
# Globals the pickler itself writes as machinery, not as the user's references.
_PLUMBING_MODULES = frozenset({"builtins", "copyreg", "__builtin__", "copy_reg", _REBUILD})
_MAX_WALK = 200_000   # placeholders visited per data value when looking for functions
_MAX_SHOWN = 30       # children printed per node; the rest are summarised


# --------------------------------------------------------------------------------------------
# The result

class Node:
    """One entry of the tree: a function, class or module pickled by value, a reference
    (pickled by name), or a captured value."""

    __slots__ = ("path", "kind", "type", "size", "name", "module", "file", "line", "globals",
                 "code_tag", "shared", "children")

    def __init__(self, path: str, kind: str, type: str, size: int) -> None:
        self.path = path          # Python expression from the root
        self.kind = kind          # function | class | module | reference | code | value
        self.type = type          # what the pickle holds there, for display
        self.size = size          # bytes this subtree takes in the pickle
        self.name: Optional[str] = None
        self.module: Optional[str] = None
        self.file: Optional[str] = None
        self.line: Optional[int] = None
        self.globals: Optional[List[str]] = None
        self.code_tag: Optional[str] = None
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
        for key in ("name", "module", "file", "line", "globals", "code_tag"):
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
                 references: List[str], source: str) -> None:
        self.tree = tree
        self.total = total
        self.protocol = protocol
        self.references = references  # module.name of everything loading will import
        self.source = source

    def functions(self) -> List[Node]:
        """Every function pickled by value, in tree order."""
        return [n for n in self.tree.walk() if n.kind == "function" and not n.shared]

    def classes(self) -> List[Node]:
        """Every class pickled by value, in tree order."""
        return [n for n in self.tree.walk() if n.kind == "class" and not n.shared]

    def to_dict(self) -> Dict[str, Any]:
        def brief(n: Node) -> Dict[str, Any]:
            d = {"path": n.path, "name": n.name, "module": n.module, "size": n.size}
            if n.kind == "function":
                d.update(file=n.file, line=n.line, globals=n.globals, code_tag=n.code_tag)
            return d

        return {
            "source": self.source, "total_size": self.total, "protocol": self.protocol,
            "functions": [brief(n) for n in self.functions()],
            "classes": [brief(n) for n in self.classes()],
            "references": self.references, "tree": self.tree.to_dict(self.total),
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

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
    tree = _TreeBuilder(reader).build(root)
    return Explanation(tree, len(data), reader.protocol, sorted(reader.references), source)


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
    print(result.to_json() if args.json else render(result))
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

    __slots__ = ("func", "args", "kwargs", "state", "items", "setitems", "setter_state")

    def __init__(self, func: _Sym, args: Optional[_Sym], start: int, end: int) -> None:
        super().__init__(start, end)
        self.func = func
        self.args = args
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
# fastfnpickle._rebuild callables that fill in an object made earlier: ``setter(obj, state)``.
# ``function`` both makes a function (4 arguments) and fills one (2 arguments).
_SETTERS = frozenset({"function", "make_class", "set_module_state", "fill_cell"})


class _Reader:
    """Runs the pickle's opcodes on placeholders instead of objects."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.protocol: Optional[int] = None
        self.references: set = set()

    def run(self) -> _Sym:
        import pickletools

        try:
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
                stack.append(_Map(list(zip(items[::2], items[1::2])), mark_pos, end))
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
                self._setitems(stack[-1], list(zip(items[::2], items[1::2])), end)
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
                stack.append(_Call(cls, args, cls.start, end))
            elif name == "NEWOBJ_EX":
                kwargs = stack.pop()
                args = stack.pop()
                cls = stack.pop()
                call = _Call(cls, args, cls.start, end)
                call.kwargs = kwargs
                stack.append(call)
            elif name == "INST":
                items, mark_pos = pop_mark()
                module, _, qualname = str(arg).partition(" ")
                cls = self._global(module, qualname, pos, end)
                stack.append(_Call(cls, _Seq("tuple", items, mark_pos, end), mark_pos, end))
            elif name == "OBJ":
                items, mark_pos = pop_mark()
                stack.append(_Call(items[0], _Seq("tuple", items[1:], mark_pos, end),
                                   mark_pos, end))
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
        return _Glob(module, qualname, start, end)

    def _reduce(self, func: Any, args: Any, end: int) -> _Call:
        call = _Call(func, args, func.start, end)
        f = _deref(func)
        if type(f) is _Glob and f.module == _REBUILD:
            a = _deref(args)
            if f.name in _SETTERS and type(a) is _Seq and len(a.items) == 2:
                target = _deref(a.items[0])
                if type(target) is _Call:
                    target.setter_state = a.items[1]
                    target.end = end  # the object's span runs to the end of its state
            elif f.name == "import_module" and type(a) is _Seq and a.items:
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
    """What ``call`` makes when it calls one of fastfnpickle's rebuilders (the name in
    ``_rebuild``; ``make_function`` / ``function_state`` for the two uses of ``function``)."""
    if type(call) is not _Call:
        return None
    f = _deref(call.func)
    if type(f) is _Glob and f.module == _REBUILD:
        if f.name == "function":
            return "make_function" if len(_items(call.args)) >= 3 else "function_state"
        if f.name == "make_class" and len(_items(call.args)) < 3:
            return "class_state"
        return f.name
    return None


def _state_fields(state: Any) -> Optional[Dict[str, Any]]:
    """A function state (``_format.STATE_FIELDS``, trailing Nones dropped) by field name."""
    items = _items(state)
    if len(items) > len(STATE_FIELDS) or (not items and type(_deref(state)) is not _Seq):
        return None
    fields: Dict[str, Any] = dict.fromkeys(STATE_FIELDS)
    fields.update(zip(STATE_FIELDS, items))
    return fields


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
            return {"code": "code", "closure_cell": "cell", "make_cell": "cell",
                    "make_typevar": "TypeVar", "dict_view": "dict view",
                    "make_globals": "globals"}.get(rebuild, rebuild)
        f = _deref(s.func)
        first = _deref(_items(s.args)[0]) if _items(s.args) else None
        if type(f) is _Glob and f.module == "copyreg" and type(first) is _Glob:
            return f"{first.module}.{first.name}"  # copyreg._reconstructor / __newobj__
        if type(f) is _Glob:
            return f"{f.module}.{f.name}(...)"
        return "object"
    if t is _Opaque:
        return s.what
    return "object"


class _TreeBuilder:
    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.expanded: set = set()  # ids of placeholders already shown with their children

    def build(self, root: _Sym) -> Node:
        name = "obj"
        r = _deref(root)
        rebuild = _rebuild_name(r)
        if rebuild in ("make_function", "make_class"):
            shown = self._function_info(r)[0] if rebuild == "make_function" else (
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
        if rebuild == "make_function":
            node = Node(path, "function", "function", size)
            self._fill_function(node, s, shared)
        elif rebuild == "make_class":
            node = Node(path, "class", "class", size)
            self._fill_class(node, s, shared)
        elif rebuild == "make_module":
            node = Node(path, "module", "module", size)
            node.name = _lit(_items(s.args)[0]) if _items(s.args) else None
            if not shared:
                self._expand_map(node, s.setter_state, path, ".{}")
        elif rebuild == "import_module":
            node = Node(path, "reference", "module", size)
            node.name = _lit(_items(s.args)[0]) if _items(s.args) else None
        elif type(s) is _Glob:
            node = Node(path, "reference", "global", size)
            node.name = f"{s.module}.{s.name}"
            node.module = s.module
        elif rebuild == "code":
            node = Node(path, "code", "code", size)
            tag = _lit(_items(s.args)[0]) if _items(s.args) else None
            node.code_tag = tag.split("+")[0] if type(tag) is str else None
        else:
            node = Node(path, "value", _describe(s), size)
            if not shared:
                self.expanded.add(id(s))
                if top:
                    for label, child in _data_children(s):
                        node.children.append(self._node(child, path + label))
                else:
                    for label, child in self._interesting(s):
                        node.children.append(self._node(child, path + label))
        node.shared = shared and node.kind in ("function", "class", "module", "value")
        node.children.sort(key=lambda c: (-c.size, c.path))
        return node

    def _function_info(self, call: _Call) -> Tuple[Optional[str], Optional[str],
                                                   Optional[str], Optional[int], Optional[str]]:
        """(qualname, module, file, line, code tag) of a by-value function.

        The function is ``function(tag, code_bytes, filename, globals, closure)`` filled in by
        ``function(func, state)`` with the state of ``_core_py.reduce_function``.
        """
        args = _items(call.args)
        state = _state_fields(call.setter_state)
        qualname = module = filename = None
        line = None
        tag = _lit(args[0]) if args else None
        blob = _lit(args[1]) if len(args) > 1 else None
        if tag in (CODE_TAG, CODE_TAG_SETS) and isinstance(blob, bytes):
            info = _code_info(blob)
            if info is not None:
                qualname, filename, line = info
        if len(args) > 2 and type(_lit(args[2])) is str:
            filename = _lit(args[2])  # the marshalled code holds "" instead
        if state is not None:
            if type(_lit(state["qualname"])) is str:
                qualname = _lit(state["qualname"])
            elif qualname is not None and type(_lit(state["name"])) is str:
                qualname = (qualname.rpartition(".")[0] + "." + _lit(state["name"])).lstrip(".")
            boxed = _items(state["module"])  # (module,) when it differs from the globals'
            if boxed and type(_lit(boxed[0])) is str:
                module = _lit(boxed[0])
        if module is None and len(args) > 3:
            for k, v in _items(args[3]):
                if _lit(k) == "__name__" and type(_lit(v)) is str:
                    module = _lit(v)
        if type(tag) is str:
            tag = tag.split("+")[0]
        return qualname, module, filename, line, tag

    def _fill_function(self, node: Node, call: _Call, shared: bool) -> None:
        qualname, module, filename, line, tag = self._function_info(call)
        node.name = qualname if qualname is not None else f"<code for Python {tag}>"
        node.module = module
        node.file = filename
        node.line = line
        node.code_tag = tag
        state = _state_fields(call.setter_state)
        node.globals = [str(_lit(k)) for k, _ in
                        _items(state["captured"]) + _items(state["modules"])] if state else []
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
        for k, v in _items(state["captured"]):
            node.children.append(self._node(v, f"{path}.__globals__[{_lit(k)!r}]"))
        for k, v in _items(state["modules"]):  # imported by name on load
            ref = Node(f"{path}.__globals__[{_lit(k)!r}]", "reference", "module",
                       v.end - v.start)
            ref.name = _lit(v)
            node.children.append(ref)
            if type(ref.name) is str:
                self.reader.references.add(ref.name)
        for i, v in enumerate(_items(state["defaults"])):
            node.children.append(self._node(v, f"{path}.__defaults__[{i}]"))
        for k, v in _items(state["kwdefaults"]):
            node.children.append(self._node(v, f"{path}.__kwdefaults__[{_lit(k)!r}]"))
        empty = {_lit(e) for e in _items(state["empty_cells"])}
        for i, v in enumerate(_items(state["cell_values"])):
            if i not in empty:
                node.children.append(self._node(v, f"{path}.__closure__[{i}].cell_contents"))
        annotations = state["annotations"]
        if annotations is not None and type(_deref(annotations)) is not _Lit:
            node.children.append(self._node(annotations, path + ".__annotations__"))
        for k, v in _items(state["attrs"]):
            node.children.append(self._node(v, f"{path}.{_lit(k)}"))
        extra = _items(state["extra"])
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
                node.children.append(self._node(value, f"{path}.{key}"))
        state = _items(call.setter_state)
        if state:
            self._expand_map(node, state[0], path, ".{}")

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
            if rebuild in ("make_function", "make_class", "make_module", "import_module") or (
                    type(s) is _Glob and s.module not in _PLUMBING_MODULES):
                found.append((label, occ))
                continue
            if type(occ) is _Ref or id(s) in seen:
                continue  # data already walked where it was first written
            seen.add(id(s))
            for child_label, child in reversed(_data_children(s)):
                stack.append((label + child_label, child))
        return found


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
        if rebuild in ("make_cell",):
            out.extend((".cell_contents", v) for v in _items(s.setter_state)[:1])
            return out
        if rebuild == "dict_view":
            out.extend(("", v) for v in _items(s.args)[:1])
            return out
        f = _deref(s.func)
        if not (type(f) is _Glob and f.module in _PLUMBING_MODULES):
            out.append((".<constructor>", s.func))
        for i, v in enumerate(_items(s.args)):
            if i == 0 and type(f) is _Glob and f.module == "copyreg":
                continue  # the class, named in the description
            out.append((f".<arg {i}>", v))
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


def _code_info(blob: bytes) -> Optional[Tuple[str, str, int]]:
    import marshal
    from types import CodeType

    try:
        code = marshal.loads(unseal(blob))
    except Exception:
        return None
    if type(code) is not CodeType:
        return None
    return getattr(code, "co_qualname", code.co_name), code.co_filename, code.co_firstlineno


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
    return f"{node.path}  {what}  {_size(node.size)} {pct}".rstrip()


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
    return "\n".join(lines)
