"""Save a checkpoint holding lambdas, closures and a model class defined in this script.

    python examples/torch_checkpoint.py [PATH] [--protocol N] [--legacy]

The file loads in any process where fastfnpickle is importable; the model class need not be.
"""

import sys

import torch

import fastfnpickle


class Scaler(torch.nn.Module):  # defined in __main__: pickled by value
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim)
        self.activation = lambda x: torch.relu(x) * 2  # a lambda attribute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


def make_checkpoint() -> dict:
    torch.manual_seed(0)
    weights = torch.arange(12.0).reshape(3, 4)
    return {
        "weights": weights,
        "row": weights[1],                      # a view: shares storage with "weights"
        "scale": lambda x: x * 3,               # a lambda
        "project": lambda x: x @ weights.T,     # a closure capturing a tensor saved above
        "model": Scaler(4),
    }


def main(argv: list) -> None:
    path = argv[0] if argv and not argv[0].startswith("--") else "checkpoint.pt"
    protocol = int(argv[argv.index("--protocol") + 1]) if "--protocol" in argv else 2
    legacy = "--legacy" in argv

    checkpoint = make_checkpoint()
    torch.save(checkpoint, path, pickle_module=fastfnpickle, pickle_protocol=protocol,
               _use_new_zipfile_serialization=not legacy)

    loaded = torch.load(path, pickle_module=fastfnpickle, weights_only=False)
    x = torch.ones(2, 4)
    assert torch.equal(loaded["project"](x), checkpoint["project"](x))
    assert torch.equal(loaded["model"](x), checkpoint["model"](x))
    print(f"saved {path} (protocol {protocol}, {'legacy' if legacy else 'zipfile'} format)")


if __name__ == "__main__":
    main(sys.argv[1:])
