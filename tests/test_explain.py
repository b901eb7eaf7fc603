"""``explain``: the tree of what a pickle holds by value and the bytes each part takes, for live
objects and for pickle files read without executing them (the CLI)."""

import io
import json
import os
import pickle
import subprocess
import sys
from typing import Any, Dict

import pytest
from conftest import Impl, load_in_subprocess, run_python

from fastfnpickle._format import CODE_TAG
from fastfnpickle.explain import Node, explain, explain_bytes, main

P5 = 5


def dynamic(src: str, **namespace: Any) -> Dict[str, Any]:
    """Run ``src`` as a module nobody can import, so its functions pickle by value."""
    g: Dict[str, Any] = {"__name__": "model_code"}
    g.update(namespace)
    exec(compile(src, "model_code.py", "exec"), g)
    return g


def child(node: Node, path: str) -> Node:
    found = [c for c in node.children if c.path == path]
    assert found, (path, [c.path for c in node.children])
    return found[0]


def assert_sorted(node: Node) -> None:
    for n in node.walk():
        sizes = [c.size for c in n.children]
        assert sizes == sorted(sizes, reverse=True), n


def test_closure_over_a_big_list(impl: Impl) -> None:
    def make() -> Any:
        data = list(range(20_000))
        return lambda i: data[i]

    f = make()
    payload = impl.dumps(f)
    result = explain_bytes(payload)
    tree = result.tree
    assert tree.kind == "function" and tree.path == "obj"  # a lambda has no usable name
    assert tree.name.endswith("make.<locals>.<lambda>")
    assert tree.module == __name__ and tree.line == make.__code__.co_firstlineno + 2
    assert tree.size == len(payload) == result.total
    cell = child(tree, "obj.__closure__[0].cell_contents")
    assert cell.kind == "value" and cell.type == "list of 20000"
    # The same bytes the list takes alone, give or take the header and framing.
    alone = len(pickle.dumps(list(range(20_000)), P5))
    assert abs(cell.size - alone) < 40
    assert cell.size > 0.95 * tree.size
    assert tree.children[0] is cell
    assert_sorted(tree)
    load_in_subprocess(payload, "assert obj(19_999) == 19_999", impl=impl)


def test_class_with_a_big_class_attribute(impl: Impl) -> None:
    class Lookup:
        TABLE = bytes(range(256)) * 800
        SMALL = 3

        def get(self, i: int) -> int:
            return self.TABLE[i]

    payload = impl.dumps(Lookup)
    tree = explain_bytes(payload).tree
    assert tree.kind == "class" and tree.path == "Lookup" and tree.module == __name__
    table = child(tree, "Lookup.TABLE")
    assert table.type == "bytes of 204800"
    assert 204_800 < table.size < 204_800 + 20
    method = child(tree, "Lookup.get")
    assert method.kind == "function" and method.name.endswith("Lookup.get")
    assert child(tree, "Lookup.SMALL").size < 10
    assert tree.children[0] is table
    load_in_subprocess(payload, "assert obj().get(257) == 1", impl=impl)


def test_function_with_a_big_default(impl: Impl) -> None:
    def lookup(i: int, table: Any = tuple(str(i) for i in range(10_000))) -> str:
        return table[i]

    payload = impl.dumps({"fn": lookup, "n": 1})
    result = explain_bytes(payload)
    fn = child(result.tree, "obj['fn']")
    assert fn.kind == "function" and fn.name.endswith("lookup")
    default = child(fn, "obj['fn'].__defaults__[0]")
    assert default.type == "tuple of 10000"
    assert default.size > 0.9 * result.total
    assert sum(c.size for c in fn.children) <= fn.size
    load_in_subprocess(payload, "assert obj['fn'](42) == '42'", impl=impl)


def test_captured_global_share_references_and_memo(impl: Impl) -> None:
    import posixpath

    ns = dynamic(
        "import os\n"
        "from os.path import join\n"
        "def helper(x):\n    return join(x, 'y')\n"
        "def predict(x):\n    return helper(os.fspath(x)), len(training_df)\n",
        training_df=[float(i) for i in range(30_000)])
    payload = impl.dumps([ns["predict"], ns["helper"]])
    result = explain_bytes(payload)
    predict = child(result.tree, "obj[0]")
    assert predict.name == "predict" and predict.module == "model_code"
    assert predict.file == "model_code.py" and predict.line == 5
    assert sorted(predict.globals or []) == ["helper", "os", "training_df"]
    big = predict.children[0]
    assert big.path == "obj[0].__globals__['training_df']"
    assert big.size / result.total > 0.95
    os_ref = child(predict, "obj[0].__globals__['os']")
    assert (os_ref.kind, os_ref.name) == ("reference", "os")
    helper = child(predict, "obj[0].__globals__['helper']")
    join_ref = child(helper, "obj[0].__globals__['helper'].__globals__['join']")
    assert (join_ref.kind, join_ref.name) == ("reference", f"{posixpath.__name__}.join")
    again = child(result.tree, "obj[1]")  # written once, referenced through the memo
    assert again.kind == "function" and again.shared and again.size < 10
    assert [f.path for f in result.functions()] == ["obj[0]", "obj[0].__globals__['helper']"]
    assert "os" in result.references
    load_in_subprocess(payload, "assert obj[0]('a')[0] == 'a/y' and obj[1] is not None",
                       impl=impl)


def test_explain_prints_and_returns(capsys: Any) -> None:
    ns = dynamic("def predict(x):\n    return len(training_df)\n",
                 training_df=list(range(5000)))
    result = explain(ns["predict"])
    out = capsys.readouterr().out
    assert out.strip() == str(result)
    lines = out.splitlines()
    assert lines[1].startswith("predict  function model_code.predict  (model_code.py:1)")
    assert "predict.__globals__['training_df']  list of 5000" in out
    assert "%" in lines[2]
    buf = io.StringIO()
    assert explain(ns["predict"], file=buf).total == result.total and buf.getvalue()
    assert explain(ns["predict"], quiet=True) is not None
    assert capsys.readouterr().out == ""
    data = json.loads(result.to_json())
    assert data["functions"][0]["globals"] == ["training_df"]
    assert data["tree"]["children"][0]["percent"] > 90


def test_function_from_another_version_is_shown_without_decoding(impl: Impl) -> None:
    ns = dynamic("def scale(x):\n    return x * FACTOR\n", FACTOR=3)
    data = impl.dumps(ns["scale"])
    tag = CODE_TAG.encode()
    major, minor = sys.version_info[:2]
    other = next(t for t in (f"{major}.{minor - 1}", f"{major}.{minor + 1}")
                 if len(t) == len(CODE_TAG))
    data = data.replace(b"\x8c" + bytes([len(tag)]) + tag,
                        b"\x8c" + bytes([len(tag)]) + other.encode())
    tree = explain_bytes(data).tree
    # The file name travels beside the code bytes, so it shows even when they can't be decoded.
    assert tree.kind == "function" and tree.code_tag == other and tree.file == "model_code.py"
    assert tree.module == "model_code" and tree.globals == ["FACTOR"]
    assert f"code for Python {other}, not decoded" in str(explain_bytes(data))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_every_protocol_decodes_the_code(impl: Impl, protocol: int) -> None:
    # Below protocol 3 bytes are written as _codecs.encode(text, "latin1") calls.
    ns = dynamic("def make(k):\n    def add(x):\n        return x + k\n    return add\n")
    data = impl.dumps(ns["make"](5), protocol)
    result = explain_bytes(data)
    tree = result.tree
    assert (tree.path, tree.name, tree.line) == ("add", "make.<locals>.add", 2)
    assert child(tree, "add.__closure__[0].cell_contents").variable == "k"
    assert not [r for r in result.references if r.startswith("_codecs")]
    load_in_subprocess(data, "assert obj(1) == 6", impl=impl)


def test_closure_cells_name_their_variables(impl: Impl) -> None:
    ns = dynamic(
        "def make(big2, scale):\n"
        "    unused = None\n"
        "    def predict(x):\n"
        "        return big2[x] * scale, unused\n"
        "    del unused\n"
        "    return predict\n")
    predict = ns["make"](list(range(5000)), 3)
    assert predict.__code__.co_freevars == ("big2", "scale", "unused")
    data = impl.dumps(predict)
    result = explain_bytes(data)
    big = child(result.tree, "predict.__closure__[0].cell_contents")
    assert big.variable == "big2" and big.type == "list of 5000"
    assert child(result.tree, "predict.__closure__[1].cell_contents").variable == "scale"
    assert not [c for c in result.tree.children if "__closure__[2]" in c.path]  # empty cell
    text = str(result)
    assert "predict.__closure__[0].cell_contents (big2)  list of 5000" in text
    assert "predict.__closure__[1].cell_contents (scale)  int" in text
    tree = json.loads(result.to_json())["tree"]
    assert [(c["path"], c.get("variable")) for c in tree["children"]
            if "__closure__" in c["path"]] == [
        ("predict.__closure__[0].cell_contents", "big2"),
        ("predict.__closure__[1].cell_contents", "scale")]
    # Variables other than closure cells carry no name.
    assert all(n.variable is None for n in result.tree.walk() if "__closure__" not in n.path)
    # Code for another Python is not decoded, so its cells stay unnamed rather than guessed.
    major, minor = sys.version_info[:2]
    other = next(t for t in (f"{major}.{minor - 1}", f"{major}.{minor + 1}")
                 if len(t) == len(CODE_TAG))
    tag = CODE_TAG.encode()
    foreign = data.replace(b"\x8c" + bytes([len(tag)]) + tag,
                           b"\x8c" + bytes([len(tag)]) + other.encode())
    # (The root keeps its name where the qualname travels in the state, as on 3.10.)
    cells = [c for c in explain_bytes(foreign).tree.children
             if c.path.endswith(".__closure__[0].cell_contents")]
    assert len(cells) == 1
    assert cells[0].variable is None and cells[0].type == "list of 5000"
    load_in_subprocess(data, """
        assert obj.__code__.co_freevars == ("big2", "scale", "unused")
        assert obj.__closure__[0].cell_contents[4] * obj.__closure__[1].cell_contents == 12
    """, impl=impl)


# --------------------------------------------------------------------------------------------
# The command line

MAKER = """
import sys, fastfnpickle

class Evil:
    def __reduce__(self):
        # Loading this pickle would create the marker file: explain must not.
        return (open, (sys.argv[2], "w"))

training_df = [str(i) for i in range(20000)]

def helper(x):
    return x + 1

def predict(x, evil=Evil()):
    return helper(x), len(training_df)

with open(sys.argv[1], "wb") as f:
    f.write(fastfnpickle.dumps(predict))
"""


def test_cli_on_a_file_made_in_a_subprocess(impl: Impl, tmp_path: Any, capsys: Any) -> None:
    path, marker = tmp_path / "predict.pkl", tmp_path / "executed"
    run_python(MAKER, env=impl.env(), args=(str(path), str(marker)))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert not marker.exists()
    assert "predict  function __main__.predict  (<string>:14)" in out
    assert "predict.__globals__['training_df']  list of 20000" in out
    assert "predict.__globals__['helper']  function __main__.helper  (<string>:11)" in out
    opener = f"{open.__module__}.open"  # io.open, or _io.open from 3.12 on
    assert f"predict.__defaults__[0]  {opener}(...)" in out  # shown, never called
    assert f"loading imports: {opener}" in out
    assert main(["--json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert not marker.exists()
    assert [f["name"] for f in data["functions"]] == ["predict", "helper"]
    predict = data["functions"][0]
    assert predict["globals"] == ["helper", "training_df"] and predict["line"] == 14
    assert data["tree"]["children"][0]["path"] == "predict.__globals__['training_df']"
    assert data["total_size"] == os.path.getsize(path)
    # The entry point, as a user runs it.
    proc = subprocess.run([sys.executable, "-m", "fastfnpickle", "explain", "--json", str(path)],
                          capture_output=True, env=impl.env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == data
    assert not marker.exists()


def test_cli_object_mode(tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    (tmp_path / "explain_target_mod.py").write_text(
        "BIG = list(range(3000))\n"
        "def make():\n    big = BIG\n    return lambda: len(big)\n"
        "handler = make()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--object", "explain_target_mod:handler"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("explain_target_mod:handler: ")
    assert "obj.__closure__[0].cell_contents (big)  list of 3000" in out
    assert main(["--object", "explain_target_mod:handler", "--json"]) == 0
    cell = json.loads(capsys.readouterr().out)["tree"]["children"][0]
    assert cell["path"] == "obj.__closure__[0].cell_contents" and cell["variable"] == "big"
    assert main(["--object", "explain_target_mod:make", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tree"]["kind"] == "reference" and data["functions"] == []


def test_cli_errors(tmp_path: Any, capsys: Any) -> None:
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x05not a pickle")
    assert main([str(bad)]) == 1
    assert "explain:" in capsys.readouterr().err
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps([1, 2, 3])[:-3])
    assert main([str(truncated)]) == 1
    assert main([str(tmp_path / "missing.pkl")]) == 1
    assert main(["--object", "no_such_module_xyz:f"]) == 1
    with pytest.raises(SystemExit):
        main([])


def big_tree_pickle(impl: Impl, path: Any) -> str:
    """Write a pickle whose explanation is far more text than a pipe holds (64 kB); return
    that text."""
    ns = dynamic("def make(i, j):\n    return lambda x: x + i * j\n"
                 "rows = [[make(i, j) for j in range(30)] for i in range(30)]\n")
    data = impl.dumps(ns["rows"])
    path.write_bytes(data)
    return str(explain_bytes(data, source=str(path)))


def test_cli_into_head_exits_quietly(impl: Impl, tmp_path: Any) -> None:
    path = tmp_path / "rows.pkl"
    assert len(big_tree_pickle(impl, path)) > 256 * 1024
    # As a user types it: head takes three lines and goes; explain's next write meets a closed
    # pipe. PIPESTATUS gives explain's own status (a shell reports 141 for a SIGPIPE death).
    script = (f'"{sys.executable}" -m fastfnpickle explain "{path}" 2>"{tmp_path}/err" '
              f'| head -n 3; echo "status=${{PIPESTATUS[0]}}"')
    for unbuffered in ("", "1"):  # python -u writes through another path
        env = impl.env()
        env.pop("PYTHONUNBUFFERED", None)
        if unbuffered:
            env["PYTHONUNBUFFERED"] = unbuffered
        proc = subprocess.run(["bash", "-c", script], capture_output=True, env=env,
                              timeout=120)
        out = proc.stdout.decode().splitlines()
        assert out[0].startswith(f"{path}: ") and out[1].startswith("obj  list of 30")
        assert out[3:] == ["status=141"], (unbuffered, out)
        assert (tmp_path / "err").read_text() == ""
        assert proc.stderr == b""


def test_cli_into_a_closed_pipe(impl: Impl, tmp_path: Any) -> None:
    path = tmp_path / "rows.pkl"
    big_tree_pickle(impl, path)
    for extra, unbuffered in (([], ""), (["--json"], ""), ([], "1")):
        env = impl.env()
        env.pop("PYTHONUNBUFFERED", None)
        if unbuffered:
            env["PYTHONUNBUFFERED"] = unbuffered
        # The reading end is closed before explain starts writing: its first write fails.
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastfnpickle", "explain", *extra, str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141
        assert err == b"", err.decode(errors="replace")


def test_cli_writes_everything_to_a_reader_that_stays(impl: Impl, tmp_path: Any) -> None:
    path = tmp_path / "rows.pkl"
    text = big_tree_pickle(impl, path)
    for unbuffered in ("", "1"):  # both ways of writing to stdout
        env = impl.env()
        env.pop("PYTHONUNBUFFERED", None)
        if unbuffered:
            env["PYTHONUNBUFFERED"] = unbuffered
        proc = subprocess.run([sys.executable, "-m", "fastfnpickle", "explain", str(path)],
                              capture_output=True, env=env, timeout=120)
        assert proc.returncode == 0 and proc.stderr == b""
        assert proc.stdout.decode() == text + "\n"


# --------------------------------------------------------------------------------------------
# Real third-party objects

def test_numpy_arrays_are_described_not_dissected(impl: Impl) -> None:
    np = pytest.importorskip("numpy", reason="numpy not installed (pip install fastfnpickle[test])")
    ns = dynamic(
        "def make_scorer(weights, extras):\n"
        "    def score(v):\n"
        "        return float(v @ weights[: len(v)]), extras\n"
        "    return score\n")
    objects = np.array([len, ns["make_scorer"]], dtype=object)
    score = ns["make_scorer"](np.arange(1000, dtype=np.float64), objects)
    for protocol in (2, 5):  # _reconstruct + BUILD below 5, _frombuffer from 5 on
        data = impl.dumps(score, protocol)
        tree = explain_bytes(data).tree
        weights = child(tree, "score.__closure__[1].cell_contents")
        assert weights.variable == "weights" and weights.type == "numpy.ndarray f8 (1000,)"
        assert weights.children == []  # its bytes and dtype hold nothing by value
        extras = child(tree, "score.__closure__[0].cell_contents")
        assert extras.variable == "extras" and extras.type == "numpy.ndarray O8 (2,)"
        # An object array's elements are shown where they can be reached again.
        inner = child(extras, "score.__closure__[0].cell_contents.flat[1]")
        assert inner.kind == "function" and inner.name == "make_scorer"
        load_in_subprocess(data, """
            import numpy as np
            assert obj(np.ones(3))[0] == 3.0 and obj(np.ones(3))[1][0] is len
        """, impl=impl)


def test_pydantic_model_instance(impl: Impl) -> None:
    pytest.importorskip("pydantic",
                        reason="pydantic not installed (pip install fastfnpickle[test])")
    ns = dynamic(
        "import pydantic\n"
        "class User(pydantic.BaseModel):\n"
        "    name: str\n"
        "    tags: list = []\n"
        "    def greet(self):\n"
        "        return 'hi ' + self.name\n")
    data = impl.dumps({"user": ns["User"](name="ada", tags=["x"])})
    result = explain_bytes(data)
    user = child(result.tree, "obj['user']")
    assert user.type == "model_code.User(...)"  # an instance of a class pickled by value
    cls = child(user, "obj['user'].__class__")
    assert cls.kind == "class" and (cls.module, cls.name) == ("model_code", "User")
    greet = child(cls, "obj['user'].__class__.greet")
    assert greet.kind == "function" and greet.line == 5
    assert [c.name for c in result.classes()] == ["User"]
    assert "pydantic.main.BaseModel" in result.references
    assert not [n for n in result.tree.walk() if n.kind == "unknown" or n.type == "object"]
    load_in_subprocess(data, "assert obj['user'].greet() == 'hi ada'", impl=impl)


def test_attrs_class_instance(impl: Impl) -> None:
    pytest.importorskip("attrs", reason="attrs not installed (pip install fastfnpickle[test])")
    ns = dynamic(
        "import attrs\n"
        "@attrs.define\n"
        "class Point:\n"
        "    x: float\n"
        "    y: float = 0.0\n"
        "    def norm(self):\n"
        "        return (self.x ** 2 + self.y ** 2) ** 0.5\n")
    data = impl.dumps(ns["Point"](3.0, 4.0))
    result = explain_bytes(data)
    tree = result.tree
    assert tree.type == "model_code.Point(...)"
    cls = child(tree, "obj.__class__")
    assert cls.kind == "class" and cls.name == "Point"
    assert child(cls, "obj.__class__.norm").line == 6
    assert child(tree, "obj.x").type == "float"
    # attrs' own generated functions travel by value, with their closure variables named
    named = {n.variable for n in tree.walk() if n.variable is not None}
    assert "state_attr_names" in named, named
    assert not [n for n in tree.walk() if n.kind == "unknown" or n.type == "object"]
    text = str(result)
    assert "builtins.object.__setattr__" in text  # a getattr reduction, named as such
    load_in_subprocess(data, "assert obj.norm() == 5.0", impl=impl)


def test_paths_through_well_known_constructors(impl: Impl) -> None:
    import functools
    import types

    ns = dynamic(
        "import dataclasses\n"
        "class Shape:\n"
        "    def area(self):\n        return 1\n"
        "    side = property(lambda self: 2)\n"
        "@dataclasses.dataclass\n"
        "class Point:\n"
        "    x: int = 0\n"
        "def call(f, key):\n"
        "    return key(f())\n")
    shape = ns["Shape"]()
    obj = {"bound": shape.area,
           "partial": functools.partial(ns["call"], lambda: 1, key=lambda v: -v),
           "proxy": types.MappingProxyType({"k": lambda: 2}),
           "point": ns["Point"]}
    data = impl.dumps(obj)
    tree = explain_bytes(data).tree
    bound = child(tree, "obj['bound']")
    assert bound.type == "types.MethodType(...)"
    assert child(bound, "obj['bound'].__func__").name == "Shape.area"
    cls = child(bound, "obj['bound'].__self__.__class__")
    side = child(cls, "obj['bound'].__self__.__class__.side")
    assert side.type == "builtins.property(...)"
    assert child(side, "obj['bound'].__self__.__class__.side.fget").kind == "function"
    partial = child(tree, "obj['partial']")
    assert {c.path for c in partial.children} == {
        "obj['partial'].func", "obj['partial'].args[0]", "obj['partial'].keywords['key']"}
    assert child(child(tree, "obj['proxy']"), "obj['proxy']['k']").kind == "function"
    missing = [n for n in tree.walk() if n.path.endswith(".default_factory")]
    assert missing and all((n.kind, n.name) == ("reference", "dataclasses.MISSING")
                           for n in missing)
    # Every path shown evaluates to the object it names (memo references and the code aside).
    loaded = pickle.loads(data)
    for node in tree.walk():
        if node.path != "obj" and not node.path.endswith(".__code__"):
            eval(node.path, {"obj": loaded})
    load_in_subprocess(data, "assert obj['bound']() == 1 and obj['partial']() == -1",
                       impl=impl)


def test_paths_evaluate_to_what_they_name(impl: Impl) -> None:
    """Across the parity corpus, every path explain prints is an expression that gives the
    object it describes on the loaded value (placeholders like ``.<arg 0>`` aside)."""
    import types

    import _parity_corpus as C

    checked = placeholders = 0
    for name, obj in sorted(C.build_corpus().items()):
        for protocol in (2, 5):
            if protocol < C.MIN_PROTOCOL.get(name, 0):
                continue
            data = impl.dumps(obj, protocol)
            loaded = pickle.loads(data)
            tree = explain_bytes(data).tree
            for node in tree.walk():
                if "<" in node.path:
                    placeholders += 1
                    continue
                where = f"{name} (protocol {protocol}): {node.path}"
                value = eval(node.path, {tree.path: loaded})
                expected = {"function": types.FunctionType, "class": type,
                            "code": types.CodeType}.get(node.kind, object)
                assert isinstance(value, expected), where
                checked += 1
    assert checked > 10 * placeholders, (checked, placeholders)


def test_wrappers_views_file_copies_and_newtypes(impl: Impl, tmp_path: Any) -> None:
    import decimal

    ns = dynamic(
        "import functools, typing, decimal\n"
        "@functools.lru_cache(maxsize=8)\n"
        "def cached(x):\n    return x * 2\n"
        "@functools.singledispatch\n"
        "def show(x):\n    return 'any'\n"
        "@show.register\n"
        "def _(x: int):\n    return 'int'\n"
        "@show.register\n"
        "def _(x: decimal.Decimal):\n    return 'decimal'\n"
        "class Local:\n    pass\n"
        "@show.register\n"
        "def _(x: Local):\n    return 'local'\n"
        "UserId = typing.NewType('UserId', int)\n")
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with open(path) as f:
        f.readline()
        obj = {"cached": ns["cached"], "show": ns["show"], "UserId": ns["UserId"],
               "view": memoryview(bytes(range(24))).cast("B", (4, 6)), "file": f}
        data = impl.dumps(obj)
    result = explain_bytes(data)
    tree = result.tree
    cached = child(tree, "obj['cached']")
    assert cached.type == "lru_cache wrapper (maxsize 8)"
    assert child(cached, "obj['cached'].__wrapped__").kind == "function"
    show = child(tree, "obj['show']")
    assert show.type == "singledispatch function"
    paths = {c.path for c in show.children}
    assert {"obj['show'].__wrapped__", "obj['show'].registry[int]",
            "obj['show'].registry[decimal.Decimal]"} <= paths, paths
    # A class pickled by value has no name to index the registry with: (class, function).
    assert child(show, "obj['show'].<registered 2>[0]").kind == "class"
    assert child(show, "obj['show'].<registered 2>[1]").kind == "function"
    assert child(tree, "obj['UserId']").type == "NewType model_code.UserId"
    assert child(tree, "obj['view']").type == "memoryview B (4, 6)"
    assert child(tree, "obj['file']").type == "io.StringIO copy of 12 chars"
    assert not result.unknown
    loaded = pickle.loads(data)
    for node in tree.walk():
        if "<" not in node.path:
            eval(node.path, {"obj": loaded, "decimal": decimal})
    load_in_subprocess(data, """
        import decimal
        assert obj['cached'](2) == 4 and obj['show'](1) == 'int'
        assert obj['show'](decimal.Decimal(1)) == 'decimal' and obj['file'].read() == 'world\\n'
    """, impl=impl)


def test_damaged_pickles_give_value_error_or_an_explanation(impl: Impl) -> None:
    """Flipped bytes in real pickles: explain either explains what is there or raises
    ValueError naming the damage, for the text and the JSON alike."""
    import random

    import _parity_corpus as C

    pickles = []
    for name, obj in sorted(C.build_corpus().items()):
        for protocol in (0, 2, 5):
            if protocol >= C.MIN_PROTOCOL.get(name, 0):
                pickles.append(impl.dumps(obj, protocol))
    rng = random.Random(13)
    outcomes = {"explained": 0, "refused": 0}
    for _ in range(1500):
        data = bytearray(rng.choice(pickles))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            result = explain_bytes(bytes(data))
            str(result)
            json.loads(result.to_json())
        except ValueError as exc:
            assert str(exc), "a ValueError must say what is wrong"
            outcomes["refused"] += 1
        else:
            outcomes["explained"] += 1
    assert min(outcomes.values()) > 50, outcomes


class _Forged:
    """Reduces to a call of ``fastfnpickle._rebuild.function`` with arguments of the wrong
    shapes: what a damaged or hand-made pickle can hold (never loaded here)."""

    def __init__(self, args: Any, state: Any) -> None:
        self.args = args
        self.state = state

    def __reduce__(self) -> Any:
        from fastfnpickle import _rebuild

        return (_rebuild.function, self.args, self.state, None, None, _rebuild.function)


@pytest.mark.parametrize("args, state", [
    ((CODE_TAG, b"not code", "f.py", [1, 2], 0), ()),            # globals not a dict
    ((CODE_TAG, b"not code", "f.py", {}, 0), (["a", "b"],)),     # captured not a dict
    ((CODE_TAG, b"not code", "f.py", {}, 0), ({}, 7, 8, 9)),     # fields of the wrong types
    ((3, None), ("x",) * 20),                                     # too many state fields
])
def test_forged_function_calls_are_refused_or_shown(args: Any, state: Any) -> None:
    data = pickle.dumps(_Forged(args, state), 5)
    try:
        result = explain_bytes(data)
    except ValueError as exc:
        assert "malformed pickle" in str(exc)
    else:
        str(result)
        json.loads(result.to_json())
