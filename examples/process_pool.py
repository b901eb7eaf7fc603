"""Process pools running lambdas, closures and __main__ classes under spawn or forkserver.

    python examples/process_pool.py [spawn|forkserver|fork]
"""

import multiprocessing
import sys

import fastfnpickle.futures
from fastfnpickle.futures import ProcessPoolExecutor, by_value


class Point:  # defined in __main__: pickled by value
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def main(method: str) -> None:
    context = multiprocessing.get_context(method)
    k = 3

    # 1. The executor: functions, arguments and results all go through fastfnpickle.
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        scaled = list(pool.map(lambda p: Point(p.x * k, p.y * k), [Point(1, 2), Point(3, 4)]))
        assert scaled == [Point(3, 6), Point(9, 12)], scaled
        add_k = pool.submit(lambda: (lambda x: x + k)).result()   # a closure coming back
        assert add_k(1) == 4

    # 2. One callable for an API built on the stdlib pickle.
    with context.Pool(2) as pool:
        assert pool.map(by_value(lambda x: x * k), range(5)) == [0, 3, 6, 9, 12]

    # 3. Every multiprocessing pickler, in this process and the workers it starts.
    fastfnpickle.futures.enable_multiprocessing()
    with context.Pool(2) as pool:
        adders = pool.map(lambda i: (lambda x: x + i), range(3))
        assert [add(10) for add in adders] == [10, 11, 12]
    print("ok", method)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "spawn")
