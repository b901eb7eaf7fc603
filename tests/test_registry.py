"""``register_pickle_by_value``: a registered module (and its submodules) pickles its functions
and classes by value, so a process that cannot import it still loads them."""

import pickle
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import load_in_subprocess

import fastfnpickle

PKG = "ffp_regpkg"

INIT_SOURCE = """
import math
from . import sub

RATE = 2

def top(x):
    return x * RATE + sub.helper(x)

class Model:
    def __init__(self, w):
        self.w = w

    def predict(self, x):
        return top(x) * self.w

    @staticmethod
    def root(x):
        return math.sqrt(x)
"""

SUB_SOURCE = """
OFFSET = 100

def helper(x):
    return x + OFFSET

class SubThing:
    def value(self):
        return helper(1)
"""


@pytest.fixture
def regpkg(tmp_path: Path) -> Iterator[types.ModuleType]:
    """An importable package only this process can see; removed and unregistered afterwards."""
    root = tmp_path / PKG
    root.mkdir()
    (root / "__init__.py").write_text(INIT_SOURCE)
    (root / "sub.py").write_text(SUB_SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib
        yield importlib.import_module(PKG)
    finally:
        sys.path.remove(str(tmp_path))
        for name in (PKG, PKG + ".sub"):
            module = sys.modules.pop(name, None)
            if module is not None and name in fastfnpickle.list_registry_pickle_by_value():
                fastfnpickle.unregister_pickle_by_value(module)


def test_registered_package_pickles_by_value(impl, regpkg: Any) -> None:
    assert PKG not in fastfnpickle.list_registry_pickle_by_value()
    # Before registering: by reference, exactly as the stdlib writes it.
    assert impl.dumps(regpkg.top) == pickle.dumps(regpkg.top, protocol=5)
    fastfnpickle.register_pickle_by_value(regpkg)
    try:
        assert fastfnpickle.list_registry_pickle_by_value() == {PKG}
        payload = {"top": regpkg.top, "Model": regpkg.Model, "inst": regpkg.Model(3),
                   "helper": regpkg.sub.helper, "SubThing": regpkg.sub.SubThing}
        data = impl.dumps(payload)
        assert data != pickle.dumps(payload, protocol=5)
    finally:
        fastfnpickle.unregister_pickle_by_value(regpkg)
    assert fastfnpickle.list_registry_pickle_by_value() == set()
    assert impl.dumps(regpkg.top) == pickle.dumps(regpkg.top, protocol=5)

    back = pickle.loads(data)
    assert back["top"](1) == 103 and back["Model"](3).predict(1) == 309

    load_in_subprocess(data, f"""
        import importlib.util
        assert importlib.util.find_spec({PKG!r}) is None
        top, Model, inst, helper, SubThing = (
            obj[k] for k in ("top", "Model", "inst", "helper", "SubThing"))
        assert top(1) == 1 * 2 + 1 + 100
        assert Model(3).predict(1) == 309 and Model.root(16) == 4.0
        assert type(inst) is Model and inst.w == 3 and inst.predict(0) == 300
        assert helper(5) == 105 and SubThing().value() == 101
        assert top.__module__ == {PKG!r} and helper.__module__ == {PKG + ".sub"!r}
        assert Model.__module__ == {PKG!r} and Model.__qualname__ == "Model"
        assert {PKG!r} not in sys.modules and {PKG + ".sub"!r} not in sys.modules
    """, impl)


def test_registering_a_submodule_only(impl, regpkg: Any) -> None:
    fastfnpickle.register_pickle_by_value(regpkg.sub)
    try:
        assert fastfnpickle.list_registry_pickle_by_value() == {PKG + ".sub"}
        # The parent stays by reference; the submodule's contents go by value.
        assert impl.dumps(regpkg.top) == pickle.dumps(regpkg.top, protocol=5)
        data = impl.dumps(regpkg.sub.helper)
        assert data != pickle.dumps(regpkg.sub.helper, protocol=5)
    finally:
        fastfnpickle.unregister_pickle_by_value(regpkg.sub)
    load_in_subprocess(data, f"""
        assert obj(1) == 101 and {PKG!r} not in sys.modules
    """, impl)


def test_register_rejects_non_modules() -> None:
    for bad in ("os", None, 3, types.SimpleNamespace(__name__="os")):
        with pytest.raises(ValueError, match="module"):
            fastfnpickle.register_pickle_by_value(bad)  # type: ignore[arg-type]
    assert fastfnpickle.list_registry_pickle_by_value() == set()


def test_register_rejects_module_not_in_sys_modules() -> None:
    orphan = types.ModuleType("ffp_not_in_sys_modules")
    with pytest.raises(ValueError, match="ffp_not_in_sys_modules"):
        fastfnpickle.register_pickle_by_value(orphan)
    # A different module object under an imported name is not the imported module.
    impostor = types.ModuleType("json")
    with pytest.raises(ValueError, match="sys.modules"):
        fastfnpickle.register_pickle_by_value(impostor)
    assert fastfnpickle.list_registry_pickle_by_value() == set()


def test_unregister_errors_and_listing() -> None:
    import json
    import xml
    with pytest.raises(ValueError):
        fastfnpickle.unregister_pickle_by_value(json)
    with pytest.raises(ValueError):
        fastfnpickle.unregister_pickle_by_value("json")  # type: ignore[arg-type]
    fastfnpickle.register_pickle_by_value(xml)
    fastfnpickle.register_pickle_by_value(json)
    try:
        fastfnpickle.register_pickle_by_value(json)  # registering twice is harmless
        assert fastfnpickle.list_registry_pickle_by_value() == {"json", "xml"}
    finally:
        fastfnpickle.unregister_pickle_by_value(json)
        fastfnpickle.unregister_pickle_by_value(xml)
    assert fastfnpickle.list_registry_pickle_by_value() == set()
