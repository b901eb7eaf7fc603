"""``python -m fastfnpickle.bench``: the same as ``python -m fastfnpickle bench``."""

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
