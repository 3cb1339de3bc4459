"""Tests for interbasis.metrics on hand-built graphs with known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve, NodeLayer
from interbasis.metrics import (
    edge_gini,
    edges_99,
    gini,
    k_required,
    lambda_99,
    modularity,
    non_constant_edges,
    rank_basis,
    rank_gram,
    rank_jacobian,
    relu_sync,
    summarize,
)


def make_layer(
    name: str,
    eigenvalues: list[float],
    width: int | None = None,
    gram_eigenvalues: list[float] | None = None,
    jacobian_eigenvalues: list[float] | None = None,
    has_constant: bool = True,
) -> NodeLayer:
    rank = len(eigenvalues)
    width = rank if width is None else width
    C = torch.eye(width, dtype=torch.float64)[:, :rank]
    gram = gram_eigenvalues if gram_eigenvalues is not None else [1.0] * width
    jacobian = None if jacobian_eigenvalues is None else torch.tensor(jacobian_eigenvalues)
    return NodeLayer(
        name=name,
        C=C,
        C_pinv=C.T.clone(),
        eigenvalues=torch.tensor(eigenvalues, dtype=torch.float64),
        mean=torch.zeros(width, dtype=torch.float64),
        gram_eigenvalues=torch.tensor(gram, dtype=torch.float64),
        jacobian_eigenvalues=jacobian,
        has_constant=has_constant,
    )


# --- gini -------------------------------------------------------------------------------------


def test_gini_known_values():
    assert gini([3.0] * 7) == 0.0
    assert gini(torch.tensor([0.0] * 9 + [5.0])) == pytest.approx(0.9)  # (n - 1) / n
    # Mean absolute difference over pairs 20 / 16 = 1.25, divided by twice the mean 2.5 * 2.
    assert gini([4.0, 1.0, 3.0, 2.0]) == pytest.approx(0.25)
    assert gini(torch.tensor([[1.0, 2.0], [3.0, 4.0]])) == pytest.approx(0.25)  # flattened
    assert gini([]) == 0.0
    assert gini([0.0, 0.0]) == 0.0


def test_gini_rejects_negative_and_nan():
    with pytest.raises(ValueError):
        gini([1.0, -0.5])
    with pytest.raises(ValueError):
        gini([1.0, math.nan])


# --- sparsity ---------------------------------------------------------------------------------


def test_lambda_99_counts_non_constant_features_largest_first():
    layer = make_layer("h", [100.0, 0.5, 30.0, 50.0, 19.0, 0.5])
    assert lambda_99(layer) == 3  # 50 + 30 + 19 = 99 of 100; the constant's 100 is excluded
    assert lambda_99(layer, fraction=0.5) == 1
    assert lambda_99(layer, fraction=1.0) == 5
    logits = make_layer("output", [100.0, 0.5, 30.0, 50.0, 19.0, 0.5], has_constant=False)
    assert lambda_99(logits) == 4  # 199 of 200 needs the 100 too


def test_lambda_99_edge_cases():
    assert lambda_99(make_layer("h", [1.0, 0.0, 0.0])) == 0  # all non-constant eigenvalues zero
    assert lambda_99(make_layer("h", [1.0])) == 0  # only the constant feature
    # 99 of 100 equal values hold exactly 0.99: rounding must not push the count to 100.
    assert lambda_99(make_layer("h", [1.0] * 101)) == 99
    with pytest.raises(ValueError):
        lambda_99(make_layer("h", [1.0, 2.0]), fraction=0.0)


def edge_matrix() -> torch.Tensor:
    # Row 0: into the constant node (zero); column 0: from the constant node (huge).
    return torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],
            [1e6, 60.0, 0.0, 10.0],
            [1e6, 25.0, 4.0, 1.0],
        ],
        dtype=torch.float64,
    )


def test_non_constant_edges_drops_constant_row_and_column():
    E = edge_matrix()
    assert torch.equal(non_constant_edges(E, True, True), E[1:, 1:])
    assert torch.equal(non_constant_edges(E, True, False), E[:, 1:])
    assert torch.equal(non_constant_edges(E, False, True), E[1:, :])
    assert torch.equal(non_constant_edges(E, False, False), E)
    with pytest.raises(ValueError):
        non_constant_edges(E[0], True, True)


def test_edges_99_and_edge_gini_on_known_matrix():
    E_nc = non_constant_edges(edge_matrix(), True, True)  # 60, 25, 10, 4, 1, 0: total 100
    assert edges_99(E_nc) == 4  # 60 + 25 + 10 + 4 = 99
    assert edges_99(E_nc, fraction=0.9) == 3
    assert edges_99(E_nc, fraction=1.0) == 5  # the zero edge is never needed
    assert edges_99(torch.zeros(2, 3)) == 0
    assert edges_99(torch.zeros(0, 3)) == 0
    assert edge_gini(E_nc) == pytest.approx(gini([60.0, 25.0, 10.0, 4.0, 1.0, 0.0]))
    assert edge_gini(torch.ones(3, 3)) == 0.0


# --- ranks and degeneracy ---------------------------------------------------------------------


def test_rank_gram_threshold():
    layer = make_layer("h", [1.0, 2.0], width=5,
                       gram_eigenvalues=[3.0, 1e-3, 1e-14, 1e-16, -1e-17])
    assert rank_gram(layer, 1e-15) == 3
    assert rank_gram(layer, 1e-10) == 2
    assert rank_gram(layer, 1e-14) == 2  # strictly above
    assert rank_basis(layer) == 2


def test_rank_jacobian_relative_threshold():
    layer = make_layer("h", [1.0], width=5,
                       jacobian_eigenvalues=[10.0, 1e-10, 5e-12, 0.0, -1e-18])
    assert rank_jacobian(layer) == 2  # threshold 1e-12 * 10 = 1e-11
    assert rank_jacobian(layer, rel=1e-13) == 3
    assert rank_jacobian(make_layer("h", [1.0], jacobian_eigenvalues=[0.0, 0.0])) == 0
    assert rank_jacobian(make_layer("output", [1.0], has_constant=False)) is None


def test_relu_sync_counts_distinct_columns():
    firing = torch.tensor(
        [
            [1, 1, 0, 0, 1, 0],
            [0, 0, 1, 0, 1, 0],
            [1, 1, 1, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    # Columns 0 and 1 fire together; columns 3 and 5 are both dead: 4 patterns over 6 neurons.
    assert relu_sync(firing) == pytest.approx(4 / 6)
    assert relu_sync(torch.eye(5, dtype=torch.bool)) == 1.0
    assert relu_sync(torch.ones(7, 4, dtype=torch.bool)) == 0.25
    assert relu_sync(torch.zeros(0, 4, dtype=torch.bool)) == 0.25
    with pytest.raises(TypeError):
        relu_sync(torch.ones(3, 4))


def test_relu_sync_large_n_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    distinct = torch.rand(200_003, 40, generator=generator) > 0.5  # N not a multiple of 8
    firing = distinct[:, torch.arange(100) % 40]  # each pattern used by 2 or 3 neurons
    assert relu_sync(firing) == pytest.approx(40 / 100)
    small = torch.rand(13, 50, generator=generator) > 0.8
    expected = len({tuple(column.tolist()) for column in small.T}) / 50
    assert relu_sync(small) == pytest.approx(expected)


# --- node ablation ----------------------------------------------------------------------------


def curve(ks, scores, base=1.0, higher_is_better=True):
    return NodeAblationCurve(layer="h", ks=ks, scores=scores, base_score=base,
                             higher_is_better=higher_is_better)


def test_k_required_monotone_accuracy():
    accuracy = curve([1, 2, 3, 5, 8], [0.1, 0.5, 0.995, 0.9995, 1.0])
    assert k_required(accuracy, 0.001) == 5
    assert k_required(accuracy, 0.01) == 3
    assert k_required(accuracy, 0.5) == 2  # degradation exactly delta is within
    assert k_required(accuracy, 0.95) == 1


def test_k_required_exact_delta_survives_rounding():
    assert k_required(curve([1, 2], [0.5, 0.999]), 0.001) == 2  # 1.0 - 0.999 > 0.001 in floats


def test_k_required_non_monotone_needs_every_larger_k():
    bumpy = curve([1, 2, 3, 5, 8], [0.1, 1.0, 0.5, 1.0, 1.0])
    assert k_required(bumpy, 0.001) == 5
    # Unsorted ks give the same answer.
    assert k_required(curve([8, 3, 1, 5, 2], [1.0, 0.5, 0.1, 1.0, 1.0]), 0.001) == 5


def test_k_required_loss_curve():
    loss = curve([1, 2, 4, 8, 16], [5.0, 3.0, 2.04, 2.005, 1.99], base=2.0,
                 higher_is_better=False)
    assert k_required(loss, 0.01) == 8
    assert k_required(loss, 0.05) == 4
    assert k_required(loss, 1.0) == 2


def test_k_required_when_nothing_qualifies_and_bad_input():
    never = curve([1, 4, 16], [0.1, 0.2, 0.9])
    assert k_required(never, 0.001) == 16  # max(ks): "needs the whole layer"
    with_nan = curve([1, 4, 16], [1.0, 1.0, math.nan])
    assert k_required(with_nan, 0.001) == 16
    duplicated = curve([1, 2, 2, 4], [0.1, 1.0, 0.5, 1.0])
    assert k_required(duplicated, 0.001) == 4  # one of the scores at k = 2 fails
    with pytest.raises(ValueError):
        k_required(curve([], []), 0.01)
    with pytest.raises(ValueError):
        k_required(curve([1, 2], [1.0]), 0.01)


# --- modularity -------------------------------------------------------------------------------


def block_graph(n_layers: int = 3, block: int = 3) -> Graph:
    """Two blocks of features that only talk within their block, plus a constant node per layer."""
    width = 2 * block + 1
    layers = [make_layer(f"l{index}", [1.0] * width) for index in range(n_layers)]
    edges = []
    for _ in range(n_layers - 1):
        E = torch.full((width, width), 1e-6, dtype=torch.float64)  # below eps: dropped
        E[1:block + 1, 1:block + 1] = 1.0
        E[block + 1:, block + 1:] = 1.0
        E[1:block + 1, block + 1:] = 1e-3  # a weak cross link (weight 1 against 4)
        E[:, 0] = 1e8  # from the constant: huge, must be ignored
        E[0, :] = 0.0
        edges.append(E)
    return Graph(layers=layers, edges=edges, method="lib")


def test_modularity_finds_two_blocks():
    graph = block_graph()
    result = modularity(graph, eps=[1e-4, 1e-4], seed=0)
    assert result.q > 0.3
    assert result.resolution == 1.0
    for layer in graph.layers:
        clusters = result.membership[layer.name]
        assert len(clusters) == layer.rank
        assert clusters[0] == -1
        first, second = set(clusters[1:4]), set(clusters[4:])
        assert len(first) == 1 and len(second) == 1
        assert first != second
    # The blocks span all layers: exactly two communities.
    assert result.n_communities == 2
    assert modularity(graph, eps=[1e-4, 1e-4], seed=0) == result


def test_modularity_of_uniform_graph_is_near_zero():
    # A complete bipartite graph between two layers has no community structure: Q max is 0.
    width = 9
    layers = [make_layer("a", [1.0] * width), make_layer("b", [1.0] * width)]
    E = torch.ones(width, width, dtype=torch.float64)
    E[:, 0] = 1e8
    graph = Graph(layers=layers, edges=[E], method="lib")
    result = modularity(graph, eps=[0.1])
    assert abs(result.q) < 0.05


def test_modularity_without_kept_edges_and_bad_eps():
    graph = block_graph()
    result = modularity(graph, eps=[math.inf, math.inf])
    assert math.isnan(result.q)
    with pytest.raises(ValueError):
        modularity(graph, eps=[0.0, 1e-4])
    with pytest.raises(ValueError):
        modularity(graph, eps=[1e-4])


# --- summarize --------------------------------------------------------------------------------


def summary_graph() -> Graph:
    layers = [
        make_layer("0", [1.0, 5.0, 3.0, 2.0], width=5,
                   gram_eigenvalues=[4.0, 3.0, 2.0, 1.0, 1e-20],
                   jacobian_eigenvalues=[3.0, 2.0, 1.0, 0.0, 0.0]),
        make_layer("2", [1.0, 4.0, 0.01], width=6,
                   gram_eigenvalues=[1.0, 1.0, 1.0, 1e-12, 0.0, 0.0],
                   jacobian_eigenvalues=[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
        make_layer("output", [2.0, 1.0, 1.0], has_constant=False),
    ]
    generator = torch.Generator().manual_seed(1)
    edges = [
        torch.rand(3, 4, generator=generator, dtype=torch.float64),
        torch.rand(3, 3, generator=generator, dtype=torch.float64),
    ]
    return Graph(layers=layers, edges=edges, method="lib",
                 settings={"truncation_threshold": 1e-10})


def edge_result(transition: str, n_required: int, delta: float = 0.001) -> EdgeAblationResult:
    return EdgeAblationResult(transition=transition, n_required=n_required, n_possible=12,
                              eps=0.05, base_score=1.0, score_at_required=0.9995, delta=delta)


def test_summarize_keys_values_and_json():
    graph = summary_graph()
    curves = [
        NodeAblationCurve(layer="0", ks=[1, 2, 3, 4, 5], scores=[0.2, 0.9, 0.995, 1.0, 1.0],
                          base_score=1.0),
        NodeAblationCurve(layer="2", ks=[1, 2, 6], scores=[0.5, 1.0, 1.0], base_score=1.0),
    ]
    results = [edge_result("0->2", 5), edge_result("2->output", 4), edge_result("0->2", 3, 0.01)]
    metrics = summarize(graph, curves, results)

    expected = {"modularity/q", "ablation/edges_required@0.001/total"}
    for layer in ["0", "2", "output"]:
        expected |= {f"rank/gram/{layer}", f"rank/basis/{layer}", f"sparsity/lambda_99/{layer}"}
    expected |= {"rank/jacobian/0", "rank/jacobian/2"}
    for delta in ["0.001", "0.01", "0.05"]:
        expected |= {f"ablation/k_required@{delta}/0", f"ablation/k_required@{delta}/2"}
    for transition in ["0->2", "2->output"]:
        expected |= {f"sparsity/edges_99/{transition}", f"sparsity/edge_gini/{transition}",
                     f"ablation/edges_required@0.001/{transition}"}
    expected.add("ablation/edges_required@0.01/0->2")  # no total: 2->output missing at 0.01
    assert set(metrics) == expected

    assert metrics["rank/gram/0"] == 4  # tau from settings: 1e-10
    assert metrics["rank/gram/2"] == 3
    assert metrics["rank/jacobian/0"] == 3
    assert metrics["rank/basis/2"] == 3
    assert metrics["sparsity/lambda_99/0"] == 3
    assert metrics["sparsity/lambda_99/2"] == 1  # 4 of 4.01
    assert metrics["sparsity/lambda_99/output"] == 3
    assert metrics["ablation/k_required@0.001/0"] == 4
    assert metrics["ablation/k_required@0.01/0"] == 3
    assert metrics["ablation/k_required@0.05/2"] == 2
    assert metrics["ablation/edges_required@0.001/total"] == 9
    assert metrics["ablation/edges_required@0.01/0->2"] == 3
    E_nc = non_constant_edges(graph.edges[1], True, False)
    assert metrics["sparsity/edges_99/2->output"] == edges_99(E_nc)
    assert metrics["modularity/q"] == modularity(graph, [0.05, 0.05]).q
    assert all(type(value) in (int, float) for value in metrics.values())
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics

    assert summarize(graph, tau=1e-30)["rank/gram/0"] == 5


def test_summarize_without_edges_or_ablations():
    graph = summary_graph()
    graph.edges = None
    metrics = summarize(graph)
    assert not any(key.startswith(("sparsity/edge", "ablation/", "modularity/")) for key in metrics)
    assert metrics["rank/basis/output"] == 3


def test_summarize_modularity_nan_for_zero_eps():
    graph = summary_graph()
    results = [edge_result("0->2", 5), edge_result("2->output", 4)]
    results[1].eps = 0.0
    assert math.isnan(summarize(graph, edge_results=results)["modularity/q"])


def test_summarize_rejects_unknown_names():
    graph = summary_graph()
    with pytest.raises(ValueError):
        summarize(graph, edge_results=[edge_result("0->output", 3)])
    with pytest.raises(ValueError):
        summarize(graph, node_curves=[NodeAblationCurve("1", [1], [1.0], 1.0)])
    with pytest.raises(ValueError):
        summarize(graph, edge_results=[edge_result("0->2", 3), edge_result("0->2", 4)])
