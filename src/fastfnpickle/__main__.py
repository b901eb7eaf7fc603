"""``python -m fastfnpickle bench|explain ...``"""

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m fastfnpickle")
    parser.add_argument("command", choices=["bench", "explain"],
                        help="bench: compare serializers side by side; "
                             "explain: show what a pickle captured")
    if not argv or argv[0] not in ("bench", "explain"):
        parser.parse_args(argv[:1])  # prints usage and exits
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from .bench.runner import main as run
    else:
        from .explain import main as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
