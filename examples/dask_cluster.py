"""Dask distributed with task functions and results shipped by fastfnpickle.

    python examples/dask_cluster.py

On a real cluster, start the scheduler and every worker with the preload instead:

    dask scheduler --preload fastfnpickle.distributed
    dask worker tcp://scheduler:8786 --preload fastfnpickle.distributed

and call fastfnpickle.distributed.install() in the client.
"""

from dask.distributed import Client, LocalCluster

import fastfnpickle.distributed


class Account:  # defined in __main__: pickled by value
    def __init__(self, owner: str, balance: int) -> None:
        self.owner, self.balance = owner, balance

    def deposit(self, amount: int) -> "Account":
        return Account(self.owner, self.balance + amount)


def run(client: Client) -> None:
    offset = 7
    squares = client.map(lambda x: x * x + offset, range(1000))   # a closure, 1,000 tasks
    total = client.submit(sum, squares).result()
    assert total == sum(x * x + offset for x in range(1000)), total

    add = client.submit(lambda k: (lambda x: x + k), 5).result()   # a closure as the result
    assert add(1) == 6

    account = client.submit(lambda a: a.deposit(5), Account("ada", 10)).result()
    assert isinstance(account, Account) and account.balance == 15
    print(total, add(1), account.owner, account.balance)


def main() -> None:
    fastfnpickle.distributed.install()   # client (and LocalCluster's in-process scheduler)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      preload=["fastfnpickle.distributed"],   # workers
                      dashboard_address=None) as cluster, Client(cluster) as client:
        run(client)


if __name__ == "__main__":
    main()
