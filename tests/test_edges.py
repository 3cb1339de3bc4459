"""Edges (docs/method.md §5): sign, the sum rule, diagonal edges of elementwise sections."""

import pytest
import torch
from torch import nn

from conftest import MLP_LAYERS
from interbasis import build_graph


@pytest.mark.parametrize("method", ["lib", "pca", "neuron"])
def test_edges_are_non_negative_and_shaped_later_by_earlier(mlp, inputs, method):
    graph = build_graph(mlp, inputs, MLP_LAYERS, method=method)
    for edges, a, b in zip(graph.edges, graph.layers, graph.layers[1:]):
        assert edges.shape == (b.rank, a.rank)
        assert torch.all(edges >= 0) and edges[:, 1:].sum() > 0


def test_sum_rule_for_a_linear_section_into_logits(mlp, inputs):
    lib = build_graph(mlp, inputs, ["2", "4", "output"], method="lib")
    pca = build_graph(mlp, inputs, ["2", "4", "output"], method="pca")
    # section "4" -> output is linear: sum_i E[i, j] = Lambda_j
    torch.testing.assert_close(lib.edges[-1].sum(0), lib.layers[1].eigenvalues,
                               atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(lib.edges[-1].sum(), pca.edges[-1].sum(), atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("method", ["neuron", "lib"])
def test_elementwise_linear_section_gives_diagonal_edges(method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 5), nn.Identity(), nn.Linear(5, 6)).double()
    x = torch.randn(300, 5, dtype=torch.float64)
    # node layers at the input and output of the Identity: the section between them is elementwise
    graph = build_graph(model, x, ["1", "2", "output"], method=method)
    edges = graph.edges[0]
    off_diagonal = edges[1:, 1:] - torch.diag(edges[1:, 1:].diagonal())
    assert edges[1:, 1:].diagonal().min() > 1e-6
    assert off_diagonal.abs().max() < 1e-10 * edges.max()
