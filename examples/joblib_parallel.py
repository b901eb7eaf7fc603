"""joblib.Parallel (loky backend) running lambdas, closures and a __main__ class via fastfnpickle.

    python examples/joblib_parallel.py
    LOKY_PICKLER=fastfnpickle python examples/joblib_parallel.py   # same, set from outside
"""

from joblib import Parallel, delayed
from joblib.externals.loky import set_loky_pickler

set_loky_pickler("fastfnpickle")   # the one line


class Vector:  # defined in __main__: pickled by value
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def norm2(self) -> float:
        return self.x * self.x + self.y * self.y


def main() -> None:
    factor = 10
    scale = lambda v: Vector(v.x * factor, v.y * factor)   # a closure over `factor`
    vectors = Parallel(n_jobs=2)(delayed(scale)(Vector(i, i + 1)) for i in range(6))
    assert all(isinstance(v, Vector) for v in vectors)
    norms = [v.norm2() for v in vectors]
    assert norms == [100 * (i * i + (i + 1) ** 2) for i in range(6)], norms

    # Results can be functions too: each worker sends back a closure.
    adders = Parallel(n_jobs=2)(delayed(lambda k: lambda x: x + k)(k) for k in range(4))
    assert [add(100) for add in adders] == [100, 101, 102, 103]
    print(norms)


if __name__ == "__main__":
    main()
