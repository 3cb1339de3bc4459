"""Node and edge ablations: the schedule, the bisection, and the ends of the curves."""

import pytest
import torch

from conftest import trained_blob_classifier
from interbasis import build_graph, edge_ablation, node_ablation_curve
from interbasis.basis.ablation import (
    ablation_schedule,
    bisect_smallest,
    edge_mask,
    halving_schedule,
)

LAYERS = ["0", "2", "4", "output"]


@pytest.fixture(scope="module")
def blobs():
    model, x, y = trained_blob_classifier()
    graphs = {m: build_graph(model, x, LAYERS, method=m) for m in ("lib", "pca")}
    return model, x, y, graphs


def test_schedule_is_dense_below_ten_then_geometric():
    ks = ablation_schedule(129)
    assert ks[:10] == list(range(10)) and ks[-1] == 129
    assert all(b > a for a, b in zip(ks, ks[1:]))
    ratios = [b / a for a, b in zip(ks[10:-1], ks[11:-1])]
    assert all(r <= 1.05 * 1.1 for r in ratios)
    assert ablation_schedule(4) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("threshold", [0, 1, 37, 499, 500])
def test_bisection_finds_the_threshold_of_a_step_function(threshold):
    calls = []

    def within(n):
        calls.append(n)
        return n >= threshold

    assert bisect_smallest(within, 500) == threshold
    assert len(calls) <= 12


def test_bisection_with_tolerance_and_failure():
    assert bisect_smallest(lambda n: n >= 37, 500, tolerance=8) - 37 in range(0, 9)
    assert bisect_smallest(lambda n: False, 100) == 100


@pytest.mark.parametrize("method", ["lib", "pca"])
def test_node_ablation_keeping_all_is_exact_and_none_is_chance(blobs, method):
    model, x, y, graphs = blobs
    curve = node_ablation_curve(model, graphs[method], "2", (x, y))
    assert curve.base_score > 0.95
    assert curve.ks[-1] == 9 and curve.scores[-1] == curve.base_score
    rank = graphs[method].layer("2").rank
    for k, score in zip(curve.ks, curve.scores):
        if k >= rank:
            assert score == curve.base_score
    assert curve.scores[0] == pytest.approx(0.25)  # 4 balanced classes, constant prediction


def test_edge_mask_keeps_ties_and_the_constant_column():
    edges = torch.tensor([[9.0, 0, 0], [5.0, 3, 1], [7.0, 3, 2]], dtype=torch.float64)
    mask = edge_mask(edges, 1, to_constant=True)
    assert mask[:, 0].all() and mask[1:, 1:].sum() == 2  # the two tied 3s
    assert mask[0, 1:].sum() == 0
    assert edge_mask(edges, 0, to_constant=False)[:, 1:].sum() == 0


@pytest.mark.parametrize("method", ["lib", "pca"])
def test_edge_ablation_bisection_on_a_trained_model(blobs, method):
    model, x, y, graphs = blobs
    result = edge_ablation(model, graphs[method], 1, (x, y), delta=0.001)
    n_all = max(result.evaluations)
    assert result.evaluations[n_all] == pytest.approx(result.base_score, abs=1e-12)
    assert 0 < result.n_required <= n_all
    assert result.base_score - result.score_at_required <= 0.001
    below = [n for n in result.evaluations if n < result.n_required]
    assert all(result.base_score - result.evaluations[n] > 0.001 for n in below)
    assert result.n_possible == 8 * 8 and result.eps > 0


def test_halving_schedule_is_what_the_bisection_probes_while_passing():
    assert halving_schedule(20) == [20, 10, 5, 2, 1]
    assert halving_schedule(1) == [1] and halving_schedule(0) == []
    assert bisect_smallest(lambda n: n >= 1, 20) == 1  # probes 10, 5, 2, 1: the whole schedule


def test_edge_curve_adds_every_halving_and_keeps_the_answer(blobs):
    model, x, y, graphs = blobs
    plain = edge_ablation(model, graphs["pca"], 1, (x, y), delta=0.001)
    dense = edge_ablation(model, graphs["pca"], 1, (x, y), delta=0.001, curve=True)
    n_total = max(plain.evaluations)
    assert set(halving_schedule(n_total)) <= set(dense.evaluations)
    assert set(plain.evaluations) <= set(dense.evaluations)
    assert dense.n_required == plain.n_required and dense.eps == plain.eps
    for n, score in plain.evaluations.items():
        assert dense.evaluations[n] == score
