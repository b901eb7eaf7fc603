"""torch: checkpoints through ``pickle_module=fastfnpickle`` and DataLoader spawn workers.

Checkpoints are written by the example script run as ``__main__`` (so its ``nn.Module``
subclass is a genuine ``__main__`` class) and read back in another fresh interpreter that does
not define it.
"""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install fastfnpickle[torch])")

from conftest import PYTHON_IMPL, run_python  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (file name, pickle protocol, legacy format)
VARIANTS = [
    ("zip2.pt", 2, False), ("zip4.pt", 4, False), ("zip5.pt", 5, False),
    ("legacy2.pt", 2, True), ("legacy4.pt", 4, True), ("legacy5.pt", 5, True),
]

SAVE_ALL = r"""
import runpy, sys, warnings
import fastfnpickle
example, implementation, directory = sys.argv[1:4]
assert fastfnpickle.IMPLEMENTATION == implementation
warnings.simplefilter("ignore")    # the legacy format warns that __main__ has no source file
for name, protocol, legacy in VARIANTS:
    sys.argv = [example, f"{directory}/{name}", "--protocol", str(protocol)]
    if legacy:
        sys.argv.append("--legacy")
    runpy.run_path(example, run_name="__main__")
"""

LOAD_ALL = r"""
import sys, warnings, zipfile
import torch
import fastfnpickle
implementation, directory = sys.argv[1:3]
assert fastfnpickle.IMPLEMENTATION == implementation
warnings.simplefilter("ignore")
for name, protocol, legacy in VARIANTS:
    path = f"{directory}/{name}"
    if legacy:
        with open(path, "rb") as f:
            head = f.read(2)
    else:
        with zipfile.ZipFile(path) as archive:
            [data_pkl] = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            head = archive.read(data_pkl)[:2]
    assert head == bytes([0x80, protocol]), (name, head)

    ck = torch.load(path, pickle_module=fastfnpickle, weights_only=False)
    weights = ck["weights"]
    assert torch.equal(weights, torch.arange(12.0).reshape(3, 4)), name

    row = ck["row"]                                    # the view still shares storage
    assert torch.equal(row, weights[1]) and row.storage_offset() == 4, name
    assert row.untyped_storage().data_ptr() == weights.untyped_storage().data_ptr(), name

    project = ck["project"]                            # the closure's tensor is the same tensor
    captured = [cell.cell_contents for cell in project.__closure__ or ()]
    assert any(value is weights for value in captured), name
    x = torch.ones(2, 4)
    assert torch.equal(project(x), x @ weights.T), name
    assert ck["scale"](2) == 6, name

    model = ck["model"]                                # a __main__ class, by value
    assert type(model).__name__ == "Scaler" and isinstance(model, torch.nn.Module), name
    assert not hasattr(sys.modules["__main__"], "Scaler")
    torch.manual_seed(0)
    fresh = torch.nn.Linear(4, 4)
    assert torch.equal(model.linear.weight, fresh.weight), name
    assert torch.equal(model(x), torch.relu(fresh(x)) * 2), name  # the lambda attribute works

    weights[1, 0] = -1.0                               # shared after loading, not copies
    assert row[0].item() == -1.0 and project(x)[0, 1].item() == 17.0, name
print("ok", len(VARIANTS))
"""


def test_checkpoints_load_in_fresh_process(impl, tmp_path):
    prelude = f"VARIANTS = {VARIANTS!r}\n"
    run_python(prelude + SAVE_ALL, env=impl.env(),
               args=(str(EXAMPLES / "torch_checkpoint.py"), impl.name, str(tmp_path)))
    out = run_python(prelude + LOAD_ALL, env=impl.env(), args=(impl.name, str(tmp_path)))
    assert out.strip() == f"ok {len(VARIANTS)}"


def test_dataloader_spawn_example(impl):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "torch_dataloader.py")],
                          capture_output=True, env=impl.env(), timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "[[0.5, 1.5, 4.5, 9.5], [16.5, 25.5, 36.5, 49.5]]"


def test_dataloader_spawn_fails_without_the_line(tmp_path):
    # The control: the same script minus the one line fails in the stdlib pickle.
    source = (EXAMPLES / "torch_dataloader.py").read_text()
    line = "fastfnpickle.futures.enable_multiprocessing()"
    assert line in source
    script = tmp_path / "without.py"
    script.write_text(source.replace(line, "pass"))
    env = PYTHON_IMPL.env()
    env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, env=env, timeout=240)
    assert proc.returncode != 0
    assert b"pickle" in proc.stderr and b"lambda" in proc.stderr, proc.stderr.decode()
