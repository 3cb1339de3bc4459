"""Class views of basis features and the edge-weight curve (data of figure 5 and class views)."""

import math

import numpy as np
import pytest
import torch

from conftest import trained_blob_classifier
from interbasis.analysis.classes import (
    class_means,
    classifier_analysis,
    correlation_ratio,
    edge_weight_curve,
    group_separation,
    log_grid,
)
from interbasis.basis import build_graph


def test_correlation_ratio_is_one_for_a_group_indicator_and_zero_for_equal_group_means():
    codes = torch.tensor([0, 0, 1, 1, 2, 2])
    indicator = (codes == 1).double()
    within_only = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0, -3.0])  # every group mean is 0
    constant = torch.full((6,), 4.0)
    ratio = correlation_ratio(torch.stack([indicator, within_only, constant], 1), codes)
    assert ratio[0].item() == pytest.approx(1.0) and ratio[1].item() == pytest.approx(0.0)
    assert math.isnan(ratio[2].item())


def test_class_means_and_group_separation_tables():
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 2.0], [7.0, 2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2])
    classes, groups = ("a", "b", "c"), {"x": (0,), "y": (1, 2)}
    means = class_means(features, labels, "2", classes, groups)
    assert len(means) == 6
    row = means[(means["class"] == 0) & (means["feature"] == 0)].iloc[0]
    assert (row["mean"], row["count"], row["group"], row["class_name"]) == (2.0, 2, "x", "a")
    separation = group_separation(features, labels, "2", groups)
    # feature 1 is 0 in group x and 2 in group y: it separates the groups perfectly
    assert separation["eta2_groups"].tolist()[1] == pytest.approx(1.0)
    assert 0 < separation["eta2_groups"].tolist()[0] < 1


def test_log_grid():
    assert log_grid(0) == [] and log_grid(1) == [1] and log_grid(3) == [1, 2, 3]
    grid = log_grid(1000)
    assert grid[0] == 1 and grid[-1] == 1000 and np.all(np.diff(grid) > 0) and len(grid) < 100


@pytest.fixture(scope="module")
def blob_graph():
    model, x, y = trained_blob_classifier()
    return model, x, y, build_graph(model, x, ["0", "2", "4", "output"], method="lib")


def test_edge_weight_curve_rises_to_one(blob_graph):
    _, _, _, graph = blob_graph
    curve = edge_weight_curve(graph)
    assert list(curve["transition"].unique()) == graph.transition_names
    for _, part in curve.groupby("transition"):
        fractions = part["fraction"].to_numpy()
        assert np.all(np.diff(fractions) >= -1e-12) and fractions[-1] == pytest.approx(1.0)
        assert part["n_edges"].iloc[-1] == part["n_possible"].iloc[0]
    first = graph.edges[0][1:, 1:]  # both layers carry a constant node
    assert curve["fraction"].iloc[0] == pytest.approx((first.max() / first.sum()).item())


def test_classifier_analysis_finds_a_feature_separating_the_groups(blob_graph):
    model, x, y, graph = blob_graph
    # blobs 0, 2 sit at +3 on an axis, 1, 3 at -3: a hidden feature tells the two pairs apart
    groups = {"plus": (0, 2), "minus": (1, 3)}
    result = classifier_analysis(model, graph, ["2", "4"], x, y, ("a", "b", "c", "d"), groups,
                                 summary_layer="2")
    assert set(result) >= {"class_means", "class_separation", "edge_weight"}
    best = result["class_separation/best_eta2_groups/2"]
    table = result["class_separation"]
    at_layer = table[table["layer"] == "2"].set_index("feature")["eta2_groups"]
    assert best == pytest.approx(at_layer.max())
    assert at_layer[result["class_separation/best_feature/2"]] == best
    assert len(result["class_means"]) == 4 * (graph.layer("2").rank + graph.layer("4").rank)
    # the same features against labels shuffled out of any relation to the inputs separate nothing
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    control = classifier_analysis(model, graph, ["2"], x, shuffled, ("a", "b", "c", "d"), groups,
                                  summary_layer="2")
    assert best > 0.5 > 0.05 > control["class_separation/best_eta2_groups/2"]
