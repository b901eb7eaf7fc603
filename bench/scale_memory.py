"""Peak memory of pickling and loading a large numpy array inside a closure, out of band.

Usage: python bench/scale_memory.py [--gb 1.0]

Each step runs in its own fresh interpreter, because ``ru_maxrss`` is a process-wide
high-water mark. Prints a Markdown table for bench/RESULTS.md: the baseline RSS of an
interpreter with numpy and fastfnpickle imported, the peak, and the peak growth as a multiple
of the array size (1.0x means no copy was made beyond the array itself).
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from typing import List, Tuple

PICKLE = """
import resource, sys, time, pickle
import numpy as np
import fastfnpickle

def kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

size = int(sys.argv[1])
base = kb()
arr = np.ones(size, dtype=np.uint8)  # every page touched
after_array = kb()

def make(a):
    def head():
        return int(a[:16].sum())
    return head

t = time.perf_counter()
buffers = []
data = fastfnpickle.dumps(make(arr), protocol=5, buffer_callback=buffers.append)
elapsed = time.perf_counter() - t
with open(sys.argv[2], "wb") as f:
    f.write(data)
with open(sys.argv[3], "wb") as f:
    for b in buffers:
        f.write(b.raw())
print(base, after_array, kb(), elapsed, len(data))
"""

LOAD = """
import resource, sys, time, pickle
import numpy as np
import fastfnpickle

def kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

size = int(sys.argv[1])
base = kb()
with open(sys.argv[2], "rb") as f:
    data = f.read()
buf = bytearray(size)  # the receiver's one copy: the bytes have to live somewhere
with open(sys.argv[3], "rb") as f:
    f.readinto(buf)
after_buffer = kb()
t = time.perf_counter()
fn = pickle.loads(data, buffers=[buf])
elapsed = time.perf_counter() - t
assert fn() == 16
assert np.shares_memory(fn.__closure__[0].cell_contents, np.frombuffer(buf, dtype=np.uint8))
print(base, after_buffer, kb(), elapsed, len(data))
"""


def _run(code: str, args: List[str]) -> Tuple[float, ...]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                         check=True, capture_output=True, text=True).stdout
    return tuple(float(x) for x in out.split())


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="array size in GiB")
    opts = parser.parse_args(argv)
    size = int(opts.gb * 1024 ** 3)
    mib = 1024.0  # ru_maxrss is in KiB on Linux
    with tempfile.TemporaryDirectory() as tmp:
        pkl, raw = os.path.join(tmp, "fn.pkl"), os.path.join(tmp, "buf.raw")
        p_base, p_arr, p_peak, p_time, p_len = _run(PICKLE, [str(size), pkl, raw])
        l_base, l_buf, l_peak, l_time, _ = _run(LOAD, [str(size), pkl, raw])
    import fastfnpickle

    array_mib = size / 1024 ** 2
    print(f"Scale memory: {array_mib:.0f} MiB uint8 array in a closure, protocol 5 out of band "
          f"(fastfnpickle {fastfnpickle.__version__}, {fastfnpickle.IMPLEMENTATION}, "
          f"Python {platform.python_version()}, {platform.machine()})")
    print()
    print("| step | baseline RSS | peak RSS | peak growth | growth / array | time | pickle size |")
    print("|---|---|---|---|---|---|---|")
    for step, base, peak, seconds in (("pickle (array + dumps)", p_base, p_peak, p_time),
                                      ("load (buffer + loads)", l_base, l_peak, l_time)):
        growth = (peak - base) / mib
        print(f"| {step} | {base / mib:.0f} MiB | {peak / mib:.0f} MiB | {growth:.0f} MiB | "
              f"{growth / array_mib:.2f}x | {seconds * 1000:.2f} ms | {int(p_len)} B |")
    print()
    print(f"dumps added {(p_peak - p_arr) / mib:.1f} MiB above the array itself; "
          f"loads added {(l_peak - l_buf) / mib:.1f} MiB above the received buffer.")


if __name__ == "__main__":
    main(sys.argv[1:])
