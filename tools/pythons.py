"""Find one working CPython per minor version on this machine (stdlib only).

Shared by ``noxfile.py`` and ``tools/run_bench.py``. pyenv's installed versions come first (its
shims on PATH exist for every version ever installed but fail unless that version is active,
so a name on PATH proves nothing: every candidate is run once), then ``python3.X`` on PATH.
Free-threaded builds and other implementations are not what the matrix tests.
"""

import glob
import json
import os
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

PROBE = (
    "import json, platform, sys, sysconfig; print(json.dumps({"
    "'impl': platform.python_implementation(), 'version': list(sys.version_info[:3]), "
    "'executable': sys.executable, "
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))"
)


def _pyenv_roots() -> List[str]:
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    return list(dict.fromkeys(r for r in roots if r and os.path.isdir(r)))


def _candidates(minor: str) -> List[str]:
    found: List[str] = []
    for root in _pyenv_roots():
        found += sorted(glob.glob(os.path.join(root, "versions", minor + ".*", "bin",
                                               "python" + minor)))
    on_path = shutil.which("python" + minor)
    if on_path:
        found.append(on_path)
    return list(dict.fromkeys(found))


def probe(exe: str) -> Optional[Dict[str, object]]:
    """Facts about ``exe``, or None if it does not run (a pyenv shim, a broken install)."""
    try:
        out = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=60,
                             check=True, stdin=subprocess.DEVNULL).stdout
        info: Dict[str, object] = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return info


def find(minor: str) -> Optional[Tuple[str, str]]:
    """``(path, "3.X.Y")`` of the newest working CPython ``minor`` (e.g. "3.11"), or None."""
    best: Optional[Tuple[List[int], str]] = None
    for exe in _candidates(minor):
        info = probe(exe)
        if not info or info["impl"] != "CPython" or info["free_threaded"]:
            continue
        version = list(info["version"])  # type: ignore[call-overload]
        if ".".join(map(str, version[:2])) != minor:
            continue
        if best is None or version > best[0]:
            best = (version, exe)
    if best is None:
        return None
    return best[1], ".".join(map(str, best[0]))
