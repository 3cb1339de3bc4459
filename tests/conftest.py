"""Shared fixtures: tiny float64 models and data for the invariant tests."""

import pandas as pd
import pytest
import torch
from torch import nn

from interbasis.basis.fold import fold_bias
from interbasis.basis.sections import capture

torch.set_num_threads(1)  # tests run beside other jobs on 2 cores


@pytest.fixture
def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(),
                         nn.Linear(10, 4)).double()


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(400, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


MLP_LAYERS = ["0", "2", "4", "output"]


def activations(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The folded model's activation at node layer ``name`` for inputs x."""
    folded = fold_bias(model).double()
    with torch.no_grad():
        return capture(folded, x.double(), [name])[name]


def trained_blob_classifier(n_per_class: int = 100, seed: int = 0):
    """A small MLP trained to separate 4 balanced Gaussian blobs; returns (model, x, y)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0, 0], [-3.0, 0, 0], [0, 3.0, 0], [0, -3.0, 0]])
    x = (centres.repeat_interleave(n_per_class, 0)
         + 0.5 * torch.randn(4 * n_per_class, 3, generator=generator))
    y = torch.arange(4).repeat_interleave(n_per_class)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.double(), x.double(), y


def pytest_collection_modifyitems(items):
    """The tiers (pyproject.toml): a test that is neither integration nor slow is unit."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in ("integration", "slow")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def reference(tmp_path):
    """A folder of the LIB authors' published CSVs (two seeds of lib and pca, made up here)."""
    folder = tmp_path / "authors"
    folder.mkdir()
    edges, nodes = [], []
    for method, offset in (("lib", 0), ("pca", 10)):
        for seed in (0, 1):
            for layer, n in (("ln1.0", 80), ("ln2.0", 60), ("unembed", 600)):
                edges.append([method, seed, layer, n + offset + seed, 0.999])
                # accuracy stays at 0.999 down to 20 + seed features, then drops
                for k in (129, 64, 32, 20, 19, 10, 0):
                    accuracy = 0.999 if k >= 20 + seed else 0.5
                    nodes.append([method, seed, layer, k, accuracy])
    edge_columns = ["method", "seed", "node_layer", "n_edges_required", "unablated_accuracy"]
    node_columns = ["method", "seed", "node_layer", "n_remaining", "accuracy"]
    pd.DataFrame(edges, columns=edge_columns).to_csv(folder / "authors_edges_required.csv",
                                                     index=False)
    pd.DataFrame(nodes, columns=node_columns).to_csv(folder / "authors_node_ablation.csv",
                                                     index=False)
    return folder
