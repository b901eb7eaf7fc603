"""What a failed pickle tells the user: where the unpicklable object sits.

Called only after pickling failed, so the success path pays nothing.
"""

from typing import Any


def note_failure(exc: BaseException, root: Any, pickler_class: type, protocol: int) -> None:
    """Add a note to ``exc`` naming the path from ``root`` to the object that failed."""
    # Filled in by the error-path work (issue 6); until then the original error stands alone.
    return None
