"""A DataLoader with spawn workers, a lambda collate_fn and a lambda inside the dataset.

    python examples/torch_dataloader.py

Without the enable_multiprocessing() line, starting the workers fails: the stdlib pickle
cannot send the lambdas to them.
"""

import torch
from torch.utils.data import DataLoader, Dataset

import fastfnpickle.futures


class Squares(Dataset):  # defined in __main__
    def __init__(self, n: int) -> None:
        self.n = n
        self.transform = lambda i: torch.tensor([float(i * i)])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(i)


def main() -> None:
    fastfnpickle.futures.enable_multiprocessing()   # the one line
    offset = 0.5
    loader = DataLoader(
        Squares(8), batch_size=4, num_workers=2, multiprocessing_context="spawn",
        collate_fn=lambda batch: torch.cat(batch) + offset,
    )
    batches = [batch.tolist() for batch in loader]
    assert batches == [[0.5, 1.5, 4.5, 9.5], [16.5, 25.5, 36.5, 49.5]], batches
    print(batches)


if __name__ == "__main__":
    main()
