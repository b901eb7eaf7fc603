"""What a failed pickle tells the user: where the unpicklable object sits.

Called only after pickling failed, so the success path pays nothing. The search walks the
object graph the way the pickler reduces it and pickles candidate children with a fresh pickler
of the same class to find the deepest one that still fails; the result is attached to the
original exception as a note holding a path the user can paste, e.g.
``obj['model'].layers[3].__closure__[0].cell_contents._lock``.

Nothing here may raise: a bug in the diagnosis must never mask the user's error.
"""

import copyreg
import gc
import io
import keyword
import pickle
import sys
import threading
import types
from types import CellType, FunctionType, GetSetDescriptorType, MemberDescriptorType, ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ._format import (
    FIELD_ANNOTATIONS,
    FIELD_CAPTURED,
    FIELD_EMPTY_CELLS,
    FIELD_MODULES,
    REBUILD_FUNCTION,
    REBUILD_MAKE_CLASS,
    REBUILD_PATH,
    STATE_FIELDS,
)

# A path step: the expression so far is written between ``prefix`` and ``suffix``. Containers
# with many items give a _ItemStep instead, which makes that text only if the step is used.
Step = Tuple[str, str]
Child = Tuple[Any, Any]


class _ItemStep:
    """``[key]`` (or a positional form when the key has no literal) made on demand."""

    __slots__ = ("key", "index", "is_key")

    def __init__(self, key: Any, index: int, is_key: bool = False) -> None:
        self.key = key
        self.index = index
        self.is_key = is_key

    def pair(self) -> Step:
        if self.is_key:
            return ("list(", f")[{self.index}]")
        lit = literal(self.key)
        if lit is not None:
            return ("", f"[{lit}]")
        return ("list(", f".values())[{self.index}]")


class _CellStep:
    """``.__closure__[i].cell_contents``, remembering the closure variable the cell holds."""

    __slots__ = ("index", "variable")

    def __init__(self, index: int, variable: Optional[str]) -> None:
        self.index = index
        self.variable = variable

    def pair(self) -> Step:
        return ("", f".__closure__[{self.index}].cell_contents")


def _pair(step: Any) -> Step:
    return step if type(step) is tuple else step.pair()


def closure_variables(steps: List[Any]) -> str:
    """``"; closure variable x"`` naming the closure variables ``steps`` pass through, each
    once, in path order (the path itself stays an expression that can be pasted), or ``""``."""
    names = list(dict.fromkeys(
        s.variable for s in steps if type(s) is _CellStep and s.variable is not None))
    if not names:
        return ""
    return "; closure variable" + ("s " if len(names) > 1 else " ") + ", ".join(names)

# Objects the pickler writes itself, which never fail and hold nothing that could.
ATOMIC = frozenset({
    type(None), bool, int, float, complex, str, bytes, bytearray, type(Ellipsis),
    type(NotImplemented),
})

MAX_TRIALS = 400          # trial pickles per failure
MAX_PATH = 200            # steps from the root
MAX_CHILDREN = 1_000_000  # children considered per object
DEEP_MIN = 50             # a failure counts as "nested too deeply" from this depth on
DEEP_NODES = 50_000       # objects visited looking for the deep chain
_SHOWN_STEPS = 8          # steps shown of a deep chain before eliding

_ACTIVE = threading.local()

# Raised by both twins' cell reducers. A cell pickled on its own is made empty, then filled
# through a reference to it (so it may hold itself); without a memo (Pickler.fast) that
# reference writes the cell again, without end.
FAST_CELL = ("pickling a cell needs the pickler's memo, and this pickler keeps none "
             "(Pickler.fast is set); unset Pickler.fast")

# Both twins' dump, when the recursion limit is hit with Pickler.fast set. A function with
# state pickled by value is written, then its state is set through a reference to it; without
# a memo that reference writes the function again, without end (so does any cycle).
FAST_RECURSION = ("pickling recursed without end: this pickler keeps no memo (Pickler.fast "
                  "is set), so an object written again from inside itself, as a function "
                  "with defaults, a closure or other state is, is written over and over; "
                  "unset Pickler.fast")
DEEP_RECURSION = ("object too deeply nested to pickle (deep recursion: maximum recursion "
                  "depth exceeded); raise sys.setrecursionlimit() or flatten the structure")


def hit_recursion_limit(exc: BaseException) -> bool:
    """True when the dump that raised ``exc`` stopped at the recursion limit.

    That is a RecursionError, or on 3.10 a PicklingError without a message: at the limit the
    C pickler of 3.10 fails to import the module of a global it writes, fails again to format
    the repr for its "import of module failed" message, and raises the bare class (measured;
    3.11 on let the RecursionError through).
    """
    if isinstance(exc, RecursionError):
        return True
    return sys.version_info < (3, 11) and type(exc) is pickle.PicklingError and not exc.args


def recursion_message(pickler: Any) -> str:
    """What a dump that hit the recursion limit says, for ``pickler``'s settings."""
    try:
        fast = bool(pickler.fast)
    except Exception:  # a broken subclass property: the plain message still holds
        fast = False
    return FAST_RECURSION if fast else DEEP_RECURSION


def note_failure(exc: BaseException, root: Any, pickler_class: type, protocol: int) -> None:
    """Add a note to ``exc`` naming the path from ``root`` to the object that failed.

    ``pickler_class`` and ``protocol`` are those of the failed dump; trial pickles use them so
    the search fails where the real pickle failed. Never raises.
    """
    if getattr(_ACTIVE, "busy", False):
        return  # a trial pickle of the search itself failed: nothing to annotate
    _ACTIVE.busy = True
    # The search allocates an object per child: on a big graph the cyclic collector would
    # otherwise rescan the whole heap again and again, tripling the time it takes.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for note in _diagnose(exc, root, pickler_class, protocol):
            add_note(exc, note)
    except Exception:
        pass  # the diagnosis is best effort; the original error must surface untouched
    finally:
        if collecting:
            gc.enable()
        _ACTIVE.busy = False


def add_note(exc: BaseException, text: str) -> None:
    """``exc.add_note(text)``; on 3.10, ``__notes__`` plus the message, which is what
    tracebacks there print (they know nothing of notes)."""
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list) and text in notes:
        return
    if hasattr(exc, "add_note"):
        exc.add_note(text)
        return
    if not isinstance(notes, list):
        notes = []
        exc.__notes__ = notes  # type: ignore[attr-defined]
    notes.append(text)
    args = exc.args
    if len(args) == 1 and isinstance(args[0], str):
        before = str(exc)
        exc.args = (args[0] + "\n" + text,)
        if str(exc) != before + "\n" + text:
            exc.args = args  # a type that does not print its message verbatim (KeyError)
    elif not args:
        exc.args = (text,)


# --------------------------------------------------------------------------------------------
# The diagnosis

def _diagnose(exc: BaseException, root: Any, pickler_class: type, protocol: int) -> List[str]:
    trial = _Trials(pickler_class, protocol)
    name = root_name(root)
    if _is_recursion(exc):
        chain = _deepest_chain(root, trial)
        if len(chain) >= DEEP_MIN:
            shown = render_path(name, chain[:_SHOWN_STEPS])
            return [f"nested too deeply to pickle along {shown}... "
                    f"(at least {len(chain)} levels deep"
                    f"{closure_variables(chain[:_SHOWN_STEPS])})"]
    path, leaf, found = _locate(root, trial)
    if not found:
        return []
    notes = [f"pickling failed at {render_path(name, path)} "
             f"(type: {type_name(leaf)}{closure_variables(path)})"]
    hint = hint_for(leaf)
    if hint:
        notes.append("hint: " + hint)
    return notes


def _is_recursion(exc: BaseException) -> bool:
    if isinstance(exc, RecursionError):
        return True
    handled = sys.exc_info()[1]  # the twins call us from inside the except that caught it
    for e in (handled, exc.__cause__, exc.__context__):
        if isinstance(e, RecursionError):
            return True
    return False


def _locate(root: Any, trial: "_Trials") -> Tuple[List[Any], Any, bool]:
    """Follow failing children from ``root`` down; ``found`` is False when the object graph
    pickles fine on its own (the failure came from the file, a buffer callback...)."""
    path: List[Any] = []
    node = root
    trial.ancestors[id(root)] = root
    while len(path) < MAX_PATH and trial.left > 0:
        kids = [(step, c) for step, c in children(node, trial.pickler(), trial.protocol)
                if type(c) not in ATOMIC and id(c) not in trial.ancestors]
        index = _first_failing(kids, trial)
        if index is None:
            break
        step, node = kids[index]
        path.append(step)
        trial.ancestors[id(node)] = node
    if not path:
        trial.ancestors.clear()  # the root itself must be pickled, not stood in for
        if not trial.fails((root,), force=True):
            return path, root, False
    return path, node, True


def _first_failing(kids: List[Child], trial: "_Trials") -> Optional[int]:
    """Index of the first child (in pickling order) that fails alone, or None."""
    n = len(kids)
    if n <= 4:
        for i in range(n):
            if trial.fails((kids[i][1],)):
                return i
        return None
    if not trial.fails(tuple([c for _, c in kids])):
        return None
    # Bisect: the failing part shrinks by half per trial pickle.
    lo, hi = 0, n
    confirmed = True
    while hi - lo > 1 and trial.left > 0:
        mid = (lo + hi) // 2
        if trial.fails(tuple([c for _, c in kids[lo:mid]])):
            hi = mid
            confirmed = True
        else:
            lo = mid
            confirmed = False
    if hi - lo > 1:
        return None
    if not confirmed and not trial.fails((kids[lo][1],)):
        return None
    return lo


def _deepest_chain(root: Any, trial: "_Trials") -> List[Any]:
    """The longest chain of nested children found by an iterative depth-first walk."""
    limit = max(sys.getrecursionlimit(), 1000) * 2
    best: Tuple[int, Any] = (0, None)  # (depth, linked path)
    stack: List[Tuple[Any, int, Any]] = [(root, 0, None)]
    seen = {id(root)}
    keep = [root]  # children made by reductions must outlive their ids in ``seen``
    pickler = trial.pickler()
    visited = 0
    while stack and visited < DEEP_NODES:
        node, depth, link = stack.pop()
        visited += 1
        if depth > best[0]:
            best = (depth, link)
            if depth >= limit:
                break
        kids = [(s, c) for s, c in children(node, pickler, trial.protocol)
                if type(c) not in ATOMIC and id(c) not in seen]
        for step, child in reversed(kids):
            seen.add(id(child))
            keep.append(child)
            stack.append((child, depth + 1, (step, link)))
    steps: List[Any] = []
    link = best[1]
    while link is not None:
        steps.append(link[0])
        link = link[1]
    steps.reverse()
    return steps


class _Sink:
    """A file that forgets what it is given: trial pickles are only run for their outcome."""

    def write(self, data: Any) -> int:
        return len(data)


_PID_TYPES = (GetSetDescriptorType, MemberDescriptorType)


def _user_persistent_id(pickler_class: type) -> Optional[Any]:
    for klass in pickler_class.__mro__:
        entry = klass.__dict__.get("persistent_id")
        if entry is not None and not isinstance(entry, _PID_TYPES):
            return entry
    return None


class _Trials:
    """Fresh picklers of the failed pickler's class; the current path's objects are replaced
    by persistent ids, so a child that refers back to an ancestor does not fail because of it."""

    def __init__(self, pickler_class: type, protocol: int) -> None:
        self.protocol = protocol
        self.left = MAX_TRIALS
        self.ancestors: Dict[int, Any] = {}
        self._cls = self._trial_class(pickler_class)

    def _trial_class(self, pickler_class: type) -> Callable[..., Any]:
        ancestors = self.ancestors
        base_pid = _user_persistent_id(pickler_class)
        protocol = self.protocol

        def persistent_id(pickler: Any, obj: Any) -> Any:
            if id(obj) in ancestors:
                return "ancestor"
            if base_pid is not None:
                return base_pid.__get__(pickler, type(pickler))(obj)
            return None

        for cls in (pickler_class, _fallback_pickler(pickler_class)):
            try:
                trial = type("TrialPickler", (cls,), {"persistent_id": persistent_id})
                trial(_Sink(), protocol)
                return trial
            except Exception:
                continue
        return _fallback_pickler(pickler_class)

    def pickler(self) -> Any:
        """A throwaway pickler, for its reducers."""
        return self._cls(_Sink(), self.protocol)

    def fails(self, objs: tuple, force: bool = False) -> bool:
        if self.left <= 0 and not force:
            return False
        self.left -= 1
        try:
            self._cls(_Sink(), self.protocol).dump(objs)
        except Exception:
            return True
        return False


def _fallback_pickler(pickler_class: type) -> type:
    # The implementation's own pickler under a host's subclass; the stdlib's if there is none
    # (this module never reaches up to pick an implementation itself).
    core = getattr(pickler_class, "_core_class", None)
    return core if isinstance(core, type) else pickle.Pickler


# --------------------------------------------------------------------------------------------
# How the pickler decomposes an object, as (path step, child) pairs in pickling order

def children(obj: Any, pickler: Any, protocol: int) -> List[Child]:
    """The objects pickling ``obj`` pickles next, each with the step that reaches it.

    ``pickler`` is a throwaway pickler of the class in use: its ``reducer_override`` gives the
    reduce values fastfnpickle writes for functions, classes and modules.
    """
    found: List[Child] = []
    try:
        for child in _children(obj, pickler, protocol):
            found.append(child)
    except Exception:
        pass  # keep what was found before the failing part
    return found


def _children(obj: Any, pickler: Any, protocol: int) -> Iterator[Child]:
    t = type(obj)
    if t in ATOMIC:
        return
    if t is dict:
        yield from _dict_items(obj)
        return
    if t is list or t is tuple:
        for i, v in enumerate(obj[:MAX_CHILDREN]):
            if type(v) not in ATOMIC:
                yield _ItemStep(i, i), v
        return
    if t is set or t is frozenset:
        for i, v in enumerate(obj):
            if i >= MAX_CHILDREN:
                break
            yield ("list(", f")[{i}]"), v
        return
    if t is CellType:
        try:
            yield ("", ".cell_contents"), obj.cell_contents
        except ValueError:
            pass
        return
    rv = pickler.reducer_override(obj)
    if rv is not NotImplemented:
        if t is FunctionType:
            yield from _function_children(obj, rv)
        elif isinstance(obj, type):
            yield from _class_children(obj, rv)
        elif isinstance(obj, ModuleType):
            yield from _module_children(obj, rv)
        else:
            yield from _reduce_children(obj, rv, _ReduceLabels("reduction"))
        return
    if isinstance(obj, type) or t is FunctionType:
        return  # by reference: a global name
    table = getattr(pickler, "dispatch_table", None)
    if table is None:
        table = copyreg.dispatch_table
    reducer = table.get(t)
    if reducer is not None:
        yield from _reduce_children(obj, reducer(obj), _ReduceLabels("dispatch_table entry"))
        return
    rv = obj.__reduce_ex__(protocol)
    yield from _reduce_children(obj, rv, _ReduceLabels(f".__reduce_ex__({protocol})"))


def _dict_items(d: Dict[Any, Any]) -> Iterator[Child]:
    i = 0
    for k, v in d.items():
        if i >= MAX_CHILDREN:
            break
        if type(k) not in ATOMIC:
            yield _ItemStep(k, i, True), k
        if type(v) not in ATOMIC:
            yield _ItemStep(k, i), v
        i += 1


def _attr_step(owner: Any, name: str, value: Any) -> Step:
    """``.name`` when that expression gives ``value`` back, else ``.__dict__['name']``."""
    if name.isidentifier() and not keyword.iskeyword(name):
        try:
            if getattr(owner, name) is value:
                return ("", "." + name)
        except Exception:
            pass
    return ("", f".__dict__[{name!r}]")


def _made_by(rv: Any, reconstructor: str) -> bool:
    """Whether the reduce value ``rv`` calls ``fastfnpickle._rebuild.<reconstructor>``."""
    if not (isinstance(rv, tuple) and rv):
        return False
    return (getattr(rv[0], "__module__", None) == REBUILD_PATH
            and getattr(rv[0], "__qualname__", None) == reconstructor)


def _function_children(func: FunctionType, rv: Any) -> Iterator[Child]:
    state = rv[2] if isinstance(rv, tuple) and len(rv) > 2 else None
    if not (_made_by(rv, REBUILD_FUNCTION) and isinstance(state, tuple)
            and len(state) <= len(STATE_FIELDS)):
        yield from _reduce_children(func, rv, _ReduceLabels("reduction"))
        return
    # Layout of the state tuple: _format.STATE_FIELDS. Values are read from the function
    # itself: the state may hold stand-ins (sets in a stable order).
    fields = dict(zip(STATE_FIELDS, state, strict=False))  # trailing Nones were dropped
    yield ("", ".__code__"), func.__code__
    gdict = func.__globals__
    for name in list(fields.get(FIELD_CAPTURED) or ()) + list(fields.get(FIELD_MODULES) or ()):
        if name in gdict:
            yield ("", f".__globals__[{name!r}]"), gdict[name]
    for i, d in enumerate(func.__defaults__ or ()):
        yield ("", f".__defaults__[{i}]"), d
    for k, v in (func.__kwdefaults__ or {}).items():
        yield ("", f".__kwdefaults__[{k!r}]"), v
    empties = fields.get(FIELD_EMPTY_CELLS) or ()
    freevars = func.__code__.co_freevars  # names the cells, in __closure__ order
    for i, cell in enumerate(func.__closure__ or ()):
        if i in empties:
            continue
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        yield _CellStep(i, freevars[i] if i < len(freevars) else None), value
    yield ("", ".__doc__"), func.__doc__
    # What the pickle carries: reading func.__annotations__ would run a 3.14+ __annotate__.
    annotations = fields.get(FIELD_ANNOTATIONS)
    if type(annotations) is dict:
        for k, v in annotations.items():
            yield ("", f".__annotations__[{k!r}]"), v
    elif annotations is not None:
        yield ("", ".__annotate__"), annotations
    for k, v in func.__dict__.items():
        yield _attr_step(func, k, v), v
    for i, tp in enumerate(getattr(func, "__type_params__", None) or ()):
        yield ("", f".__type_params__[{i}]"), tp


def _class_children(cls: type, rv: Any) -> Iterator[Child]:
    if not (_made_by(rv, REBUILD_MAKE_CLASS) and len(rv) == 6 and isinstance(rv[1], tuple)
            and len(rv[1]) == 5 and isinstance(rv[2], tuple) and len(rv[2]) in (2, 3)):
        if isinstance(rv, tuple) and len(rv) == 2:
            return  # a builtin type named through getattr
        yield from _reduce_children(cls, rv, _ReduceLabels("reduction"))
        return
    # Layout: see _classes._reduce_by_value.
    metaclass, _name, bases, skeleton, _cid = rv[1]
    if metaclass is not None and metaclass is not type:  # None stands for type
        yield ("type(", ")"), metaclass
    for i, base in enumerate(bases):
        yield ("", f".__bases__[{i}]"), base
    d = cls.__dict__
    for key, value in skeleton.items():
        if key in ("__module__", "__qualname__"):
            continue
        member = d.get(key)
        if member is not None and getattr(member, "_value_", None) is value:
            yield ("", f".{key}._value_"), value
        elif key in d:
            yield _attr_step(cls, key, d[key]), d[key]
        else:
            yield ("", f".{key}"), value
    attrs = rv[2][0]
    for key in attrs:
        if key in d:
            yield _attr_step(cls, key, d[key]), d[key]
    if len(rv[2]) == 3 and isinstance(rv[2][2], dict):  # enum members' own attributes
        for name, member_attrs in rv[2][2].items():
            for key, value in member_attrs.items():
                yield ("", f".{name}.{key}"), value


def _module_children(module: ModuleType, rv: Any) -> Iterator[Child]:
    state = rv[2] if isinstance(rv, tuple) and len(rv) > 2 else None
    if isinstance(state, dict):
        for key in state:
            value = module.__dict__.get(key)
            yield _attr_step(module, key, value), value


_KNOWN_ATTRS = ("__func__", "__self__", "fget", "fset", "fdel", "func", "args", "keywords",
                "__wrapped__", "__objclass__", "mapping")


class _ReduceLabels:
    """Names for the parts of a reduce value: the object's own expressions where one gives the
    same object back, else the position in the reduce value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fallback(self, where: str) -> Step:
        if self.source.startswith("."):
            return ("", f"{self.source}{where}")
        return ("", f".<{self.source}{where}>")


def _known_parts(obj: Any) -> Dict[int, Step]:
    """Expressions on ``obj`` by the id of the object they give."""
    known: Dict[int, Step] = {id(type(obj)): ("type(", ")")}
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        for k, v in d.items():
            if type(k) is str:
                known.setdefault(id(v), _attr_step(obj, k, v))
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__")
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots or ():
            if type(name) is str and name not in ("__dict__", "__weakref__"):
                try:
                    known.setdefault(id(getattr(obj, name)), ("", "." + name))
                except Exception:
                    pass
    for name in _KNOWN_ATTRS:
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        known.setdefault(id(value), ("", "." + name))
    return known


def _reduce_children(obj: Any, rv: Any, labels: _ReduceLabels) -> Iterator[Child]:
    if not isinstance(rv, tuple) or len(rv) < 2:
        return
    known = _known_parts(obj)

    def label(value: Any, where: str) -> Step:
        return known.get(id(value)) or labels.fallback(where)

    yield label(rv[0], "[0]"), rv[0]
    args = rv[1]
    if isinstance(args, tuple):
        for i, a in enumerate(args):
            yield label(a, f"[1][{i}]"), a
    else:
        yield label(args, "[1]"), args
    state = rv[2] if len(rv) > 2 else None
    if state is not None:
        parts = state if (isinstance(state, tuple) and len(state) == 2
                          and all(p is None or type(p) is dict for p in state)) else (state,)
        for part in parts:
            if type(part) is dict:
                for k, v in part.items():
                    if type(k) is str:
                        step = known.get(id(v)) or _attr_step(obj, k, v)
                    else:
                        step = labels.fallback(f"[2][{k!r}]")
                    yield step, v
            elif part is not None:
                yield label(part, "[2]"), part
    if len(rv) > 3 and rv[3] is not None:
        for i, item in enumerate(rv[3]):
            if i >= MAX_CHILDREN:
                break
            yield _item_step(obj, i, item), item
    if len(rv) > 4 and rv[4] is not None:
        for i, pair in enumerate(rv[4]):
            if i >= MAX_CHILDREN:
                break
            key, value = pair
            if type(key) not in ATOMIC:
                yield ("list(", f")[{i}]"), key
            lit = literal(key)
            yield (("", f"[{lit}]") if lit is not None else ("list(", f".values())[{i}]")), value
    if len(rv) > 5 and rv[5] is not None:
        yield label(rv[5], "[5]"), rv[5]


def _item_step(obj: Any, i: int, item: Any) -> Step:
    try:
        if obj[i] is item:
            return ("", f"[{i}]")
    except Exception:
        pass
    return ("list(", f")[{i}]")


# --------------------------------------------------------------------------------------------
# Presentation

def literal(key: Any) -> Optional[str]:
    """``repr(key)`` when it is a short literal that evaluates back to an equal key."""
    t = type(key)
    if t in (str, bytes, int, bool, type(None)) or (t is float and key == key
                                                   and key not in (float("inf"), float("-inf"))):
        text = repr(key)
    elif t is tuple and all(literal(k) is not None for k in key):
        text = repr(key)
    else:
        return None
    return text if len(text) <= 80 else None


def render_path(root: str, steps: List[Any]) -> str:
    """The Python expression that follows ``steps`` from the name ``root``."""
    expr = root
    for step in steps:
        prefix, suffix = _pair(step)
        expr = prefix + expr + suffix
    return expr


def root_name(root: Any) -> str:
    """The name a path starts from: a function's or class's own name, else ``obj``."""
    if isinstance(root, (FunctionType, type)):
        name = getattr(root, "__name__", None)
        if type(name) is str and name.isidentifier() and not keyword.iskeyword(name):
            return name
    return "obj"


def type_name(obj: Any) -> str:
    t = type(obj)
    module = getattr(t, "__module__", None)
    qualname = getattr(t, "__qualname__", t.__name__)
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))

_HINT_LOCK = ("thread locks belong to the running process and cannot be pickled; leave the lock "
              "out (drop it in __getstate__) and create a new one after loading (in __setstate__)")
_HINT_GENERATOR = ("generators hold a suspended frame and cannot be pickled; pickle the values "
                   "(list(gen)) or the function and arguments that make the generator")
_HINT_COROUTINE = ("coroutines hold a running frame and cannot be pickled; pickle the async "
                   "function and its arguments and create the coroutine after loading")
_HINT_SOCKET = ("sockets are connections of this process and cannot be pickled; pickle the "
                "address and reconnect after loading")
_HINT_DB = ("database connections cannot be pickled; pickle what you connect with (e.g. the "
            "database path) and reconnect after loading")
_HINT_FILE_WRITE = ("files open for writing cannot be pickled; pickle the file name and reopen "
                    "it after loading (mode 'a' to keep appending)")
_HINT_FILE_READ = ("closed files, terminals and pipes cannot be pickled (files open for "
                   "reading pickle as an in-memory copy); pickle the file name (and the "
                   "position, f.tell()) and reopen it after loading")


def hint_for(leaf: Any) -> Optional[str]:
    """A one-line hint for a known unpicklable kind of object, else None."""
    if isinstance(leaf, _LOCK_TYPES):
        return _HINT_LOCK
    if isinstance(leaf, (types.GeneratorType, types.AsyncGeneratorType)):
        return _HINT_GENERATOR
    if isinstance(leaf, types.CoroutineType):
        return _HINT_COROUTINE
    socket = sys.modules.get("socket")
    if socket is not None and isinstance(leaf, socket.socket):
        return _HINT_SOCKET
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(leaf, (sqlite3.Connection, sqlite3.Cursor)):
        return _HINT_DB
    if isinstance(leaf, io.IOBase):
        mode = getattr(leaf, "mode", None)
        if isinstance(mode, str):
            writing = any(c in mode for c in "wax+")
        else:  # no mode (raw or in-memory streams): ask the stream
            try:
                writing = not leaf.closed and leaf.writable()
            except Exception:
                writing = False
        return _HINT_FILE_WRITE if writing else _HINT_FILE_READ
    return None
