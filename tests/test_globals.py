"""Globals captured by a function pickled by value: only the referenced names (including those
read by nested code, comprehensions, class bodies and 3.12 annotation scopes), modules by
reference, and submodules reached through attribute chains imported on load."""

import base64
import pickle
import sys
import textwrap
import xml.dom.minidom  # noqa: F401  (imported so that the pickler can see the submodules)
import xml.etree.ElementTree  # noqa: F401
import xml.sax  # noqa: F401
from typing import Any, Callable, Dict, Tuple

import pytest
from conftest import run_python

DUNDERS = {"__builtins__", "__name__", "__package__"}


def dyn_namespace(source: str, module_name: str) -> Dict[str, Any]:
    """Execute ``source`` as the body of a module that is not in ``sys.modules``."""
    ns: Dict[str, Any] = {"__name__": module_name}
    exec(compile(textwrap.dedent(source), f"<{module_name}>", "exec"), ns)
    return ns


def build_only_referenced() -> Any:
    ns = dyn_namespace("""
        BIG = "Z" * 200000
        UNUSED = "unused-marker-8c2e"
        USED = 3
        def f(x):
            return x * USED
        def g():
            return missing_name_never_defined
    """, "ffp_test_globals_only")
    return {"f": ns["f"], "g": ns["g"]}


CHECK_ONLY_REFERENCED = """
f = obj["f"]
assert f(2) == 6
assert set(f.__globals__) - DUNDERS == {"USED"}, sorted(f.__globals__)
try:
    obj["g"]()
except NameError:
    pass
else:
    raise AssertionError("an undefined global must stay undefined")
"""


def build_nested_code() -> Any:
    ns = dyn_namespace("""
        G_INNER, G_LISTCOMP, G_GENEXP, G_LAMBDA, G_CLASS, G_DICTCOMP, G_DEEP = range(1, 8)
        G_METHOD = 100
        NOT_USED = "not-used-marker-77aa"
        def f():
            def inner():
                def deeper():
                    return G_DEEP
                return G_INNER + deeper()
            listcomp = [G_LISTCOMP for _ in range(1)][0]
            genexp = next(G_GENEXP for _ in range(1))
            lam = (lambda: G_LAMBDA)()
            class Local:
                attr = G_CLASS          # class bodies read globals with LOAD_NAME
                def method(self):
                    return G_METHOD
            dictcomp = {k: G_DICTCOMP for k in "a"}["a"]
            return (inner(), listcomp, genexp, lam, Local.attr, dictcomp, Local().method())
    """, "ffp_test_globals_nested")
    return ns["f"]


CHECK_NESTED_CODE = """
assert obj() == (1 + 7, 2, 3, 4, 5, 6, 100)
names = set(obj.__globals__) - DUNDERS
assert names == {"G_INNER", "G_LISTCOMP", "G_GENEXP", "G_LAMBDA", "G_CLASS", "G_DICTCOMP",
                 "G_DEEP", "G_METHOD"}, sorted(names)
"""


def build_modules_by_reference() -> Any:
    ns = dyn_namespace("""
        import math, json
        import collections.abc as cabc
        def f(x):
            return math.sqrt(x), json.dumps([x]), isinstance([], cabc.Sequence)
    """, "ffp_test_globals_modules")
    return ns["f"]


CHECK_MODULES_BY_REFERENCE = """
import sys
assert obj(16) == (4.0, "[16]", True)
for name, modname in (("math", "math"), ("json", "json"), ("cabc", "collections.abc")):
    assert obj.__globals__[name] is sys.modules[modname], name
"""


def build_submodules() -> Any:
    ns = dyn_namespace("""
        import io, os, xml
        def join(*parts):
            return os.path.join(*parts)
        def parse(text):
            return xml.etree.ElementTree.parse(io.StringIO(text)).getroot().tag
        def nested():
            def inner(text):
                return xml.dom.minidom.parseString(text).documentElement.tagName
            return inner
    """, "ffp_test_globals_submodules")
    # Bind the names only after exec so that ``xml`` is the bare package in the globals.
    return {"join": ns["join"], "parse": ns["parse"], "nested": ns["nested"]}


CHECK_SUBMODULES = """
import os
assert obj["join"]("a", "b") == os.path.join("a", "b")
assert set(obj["parse"].__globals__) - DUNDERS >= {"xml", "io"}
assert obj["parse"]("<root><x/></root>") == "root"
assert obj["nested"]()("<doc/>") == "doc"
"""


FEATURES: Dict[str, Tuple[Callable[[], Any], str]] = {
    "only_referenced": (build_only_referenced, CHECK_ONLY_REFERENCED),
    "nested_code": (build_nested_code, CHECK_NESTED_CODE),
    "modules_by_reference": (build_modules_by_reference, CHECK_MODULES_BY_REFERENCE),
    "submodules": (build_submodules, CHECK_SUBMODULES),
}

if sys.version_info >= (3, 12):
    def build_annotation_scopes() -> Any:
        ns = dyn_namespace("""
            G_ALIAS, G_GENERIC_CLASS, G_RETURN, G_BOUND = "alias", "class", "return", int
            def f():
                type Alias = list[G_ALIAS]
                class Generic[T]:
                    attr = G_GENERIC_CLASS
                def g[U: G_BOUND](x: U) -> G_RETURN:
                    return x
                (u,) = g.__type_params__
                return Alias.__value__, Generic.attr, g.__annotations__["return"], u.__bound__
        """, "ffp_test_globals_annotation_scopes")
        return ns["f"]

    FEATURES["annotation_scopes"] = (build_annotation_scopes, """
assert obj() == (list["alias"], "class", "return", int)
assert set(obj.__globals__) - DUNDERS == {"G_ALIAS", "G_GENERIC_CLASS", "G_RETURN", "G_BOUND"}
""")


def _run_check(check: str, loaded: Any) -> None:
    exec(compile(textwrap.dedent(check), "<check>", "exec"),
         {"obj": loaded, "DUNDERS": DUNDERS, "__name__": "__check__"})


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_round_trip_in_process(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    _run_check(check, pickle.loads(impl.dumps(build())))


def test_unreferenced_globals_not_in_bytes(impl) -> None:
    data = impl.dumps(build_only_referenced())
    assert b"ZZZZZZZZ" not in data and b"unused-marker-8c2e" not in data
    assert len(data) < 5000
    assert b"not-used-marker-77aa" not in impl.dumps(build_nested_code())


def test_module_global_is_written_by_name(impl) -> None:
    data = impl.dumps(build_modules_by_reference())
    # By reference: the name of the module, never its contents.
    assert b"collections.abc" in data and b"JSONEncoder" not in data
    assert len(data) < 5000


def test_all_features_in_fresh_interpreter(impl) -> None:
    payload = {name: build() for name, (build, _) in FEATURES.items()}
    checks = {name: check for name, (_, check) in FEATURES.items()}
    data = impl.dumps((payload, checks, DUNDERS))
    # The child checks that the submodules are absent before loading and present after.
    out = run_python("""
        import base64, pickle, sys, textwrap
        for name in ("xml.etree.ElementTree", "xml.dom.minidom", "xml.sax"):
            assert name not in sys.modules, name + " imported before loading"
        payload, checks, dunders = pickle.loads(base64.b64decode(sys.stdin.buffer.read()))
        assert "xml.etree.ElementTree" in sys.modules and "xml.dom.minidom" in sys.modules
        # Only submodules the code reaches were imported, not everything the pickler had.
        assert "xml.sax" not in sys.modules
        failures = []
        for name, check in checks.items():
            try:
                exec(textwrap.dedent(check),
                     {"obj": payload[name], "DUNDERS": dunders, "__name__": "__main__"})
            except BaseException as exc:
                failures.append(f"feature {name}: {exc!r}")
        assert not failures, "\\n".join(failures)
        print(len(checks))
    """, base64.b64encode(data), env=impl.env())
    assert int(out) == len(FEATURES)
