"""The public API: round trips, accepted data forms and one clear error per kind of bad input."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import interbasis
from conftest import MLP_LAYERS
from interbasis import FoldError, NodeLayerError, build_graph, load_graph


def test_save_load_round_trip_is_exact(mlp, inputs, tmp_path):
    graph = build_graph(mlp, inputs, MLP_LAYERS, n_sources=2)
    path = tmp_path / "sub" / "graph.pt"
    graph.save(path)
    loaded = load_graph(path)
    assert loaded.method == graph.method and loaded.settings == graph.settings
    assert loaded.layer_names == MLP_LAYERS
    for a, b in zip(graph.layers, loaded.layers):
        for field in ("C", "C_pinv", "eigenvalues", "mean", "gram_eigenvalues"):
            assert torch.equal(getattr(a, field), getattr(b, field))
        assert (a.n_positions, a.has_constant) == (b.n_positions, b.has_constant)
    assert all(torch.equal(a, b) for a, b in zip(graph.edges, loaded.edges))
    assert not list(path.parent.glob("*.tmp"))


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no graph file"):
        load_graph(tmp_path / "nope.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an interbasis graph"):
        load_graph(tmp_path / "other.pt")


def test_batches_lists_and_dataloaders_give_the_same_graph(mlp, inputs):
    reference = build_graph(mlp, inputs, MLP_LAYERS, batch_size=64)
    targets = torch.zeros(len(inputs), dtype=torch.long)
    variants = [
        build_graph(mlp, list(inputs.split(50)), MLP_LAYERS),
        build_graph(mlp, DataLoader(TensorDataset(inputs, targets), batch_size=33), MLP_LAYERS),
        build_graph(mlp, inputs.float(), MLP_LAYERS),  # float32 inputs are cast to float64
    ]
    for graph in variants:
        for a, b in zip(reference.layers, graph.layers):
            torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-6, rtol=1e-6)
        for a, b in zip(reference.edges, graph.edges):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert reference.settings["n_samples"] == 400


def test_the_model_is_not_modified(mlp, inputs):
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    build_graph(mlp.float(), inputs, MLP_LAYERS)
    assert all(torch.equal(before[k].float(), v) for k, v in mlp.state_dict().items())
    assert next(mlp.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(node_layers=["0", "9", "output"]), NodeLayerError, r"'9' is not a submodule.*valid"),
        (dict(node_layers=["2", "0", "output"]), NodeLayerError, "model order"),
        (dict(node_layers=["0", "output", "2"]), NodeLayerError, "only be the last"),
        (dict(node_layers=["0"]), NodeLayerError, "at least two"),
        (dict(node_layers="0"), NodeLayerError, "list of module names"),
        (dict(method="ica"), ValueError, r"unknown method 'ica'.*lib"),
        (dict(integration="simpson"), ValueError, "unknown integration"),
        (dict(n_sources=0), ValueError, "n_sources"),
        (dict(batch_size=-1), ValueError, "batch_size"),
        (dict(data=torch.randn(10, 5)), ValueError, r"failed on a data batch of shape \(10, 5\)"),
        (dict(data=iter([torch.randn(10, 6)])), TypeError, "re-iterable"),
        (dict(data=[]), ValueError, "empty"),
        (dict(data="text"), ValueError, "failed on a data batch"),
        (dict(model=nn.Sequential(nn.Linear(6, 4), nn.Softmax(-1))), FoldError, "Softmax"),
    ],
)
def test_bad_input_raises_one_clear_error(mlp, inputs, kwargs, error, message):
    arguments = dict(model=mlp, data=inputs, node_layers=MLP_LAYERS)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        build_graph(arguments.pop("model"), arguments.pop("data"), **arguments)


def test_a_model_claiming_to_be_folded_without_the_constant_is_rejected(inputs):
    class Pretender(nn.Sequential):
        is_bias_folded = True

    model = Pretender(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    with pytest.raises(NodeLayerError, match="'2': the last coordinate is not the constant 1"):
        build_graph(model, inputs, ["2", "output"])


def test_a_node_layer_called_twice_is_rejected(inputs):
    class Twice(nn.Module):
        is_bias_folded = True

        def __init__(self):
            super().__init__()
            self.hook = nn.Identity()

        def forward(self, x):
            return self.hook(self.hook(x))

    with pytest.raises(NodeLayerError, match="more than once"):
        build_graph(Twice(), inputs, ["hook", "output"])


def test_public_names():
    for name in ("build_graph", "load_graph", "Graph", "fold_bias", "node_ablation_curve",
                 "edge_ablation", "SelfFolding"):
        assert hasattr(interbasis, name)
