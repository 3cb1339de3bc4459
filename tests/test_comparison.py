"""metrics.comparison: tolerance-free areas, brackets and paired per-seed log-ratios."""

import math

import numpy as np
import pandas as pd
import pytest

from interbasis.metrics.comparison import (
    area_above_curve,
    edge_area,
    has_halvings,
    mean_interval,
    normalised_deficit,
    paired_log_ratios,
    required_bracket,
)


def test_a_step_curve_has_an_area_equal_to_its_step():
    ks = np.arange(0, 21)
    scores = np.where(ks >= 7, 1.0, 0.1)  # accuracy: chance until 7 features are kept
    area = area_above_curve(ks, scores, base_score=1.0, higher_is_better=True)
    # trapezoid puts half of the jump's unit interval on each side; the bounds bracket it
    assert area.lower == pytest.approx(6.0) and area.upper == pytest.approx(7.0)
    assert area.lower <= area.value <= area.upper and area.value == pytest.approx(6.5)
    assert area.n_max == 20 and area.fraction == pytest.approx(6.5 / 20)


def test_the_area_does_not_depend_on_the_scores_unit_or_direction():
    ks = np.array([0, 1, 2, 4, 8, 16])
    accuracy = np.array([0.2, 0.5, 0.8, 0.95, 1.0, 1.0])
    loss = 3.0 - 2.0 * accuracy  # the same curve as a loss: lower is better
    a = area_above_curve(ks, accuracy, 1.0, higher_is_better=True)
    b = area_above_curve(ks, loss, 1.0, higher_is_better=False)
    assert a.value == pytest.approx(b.value) and a.upper == pytest.approx(b.upper)


def test_sparse_probes_give_wide_bounds_and_dense_ones_narrow():
    dense = np.arange(0, 101)
    score = 1 - np.exp(-dense / 10)
    tight = area_above_curve(dense, score, 1.0, True)
    probes = np.array([0, 40, 100])
    loose = area_above_curve(probes, 1 - np.exp(-probes / 10), 1.0, True)
    assert tight.upper - tight.lower < 1.5
    assert loose.upper - loose.lower > 30
    assert loose.lower <= 10 <= loose.upper  # the exact area (10) lies inside


def test_deficit_needs_the_ablate_all_point_and_a_gap():
    with pytest.raises(ValueError, match="starts at 2 kept, not 0"):
        normalised_deficit([2, 3], [0.5, 1.0], 1.0, True)
    with pytest.raises(ValueError, match="does not worsen"):
        normalised_deficit([0, 1], [1.0, 1.0], 1.0, True)
    with pytest.raises(ValueError, match="matching 1-d"):
        normalised_deficit([0, 1], [1.0], 1.0, True)
    x, d = normalised_deficit([2, 0, 2], [0.5, 0.0, 0.7], 1.0, True)  # sorted, repeats averaged
    assert list(x) == [0, 2] and d == pytest.approx([1.0, 0.4])


def test_required_bracket_holds_the_tolerance_crossing():
    ks = np.array([0, 10, 20, 30, 40])
    loss = np.array([5.0, 3.0, 1.2, 1.05, 1.0])  # gap 4 nats above the base 1.0
    assert required_bracket(ks, loss, 1.0, False, 0.05) == (10, 20)  # 0.2 / 4 = 5% at 20
    assert required_bracket(ks, loss, 1.0, False, 0.02) == (20, 30)
    assert required_bracket(ks, loss, 1.0, False, 0.0) == (30, 40)
    with pytest.raises(ValueError, match="share of the ablation gap"):
        required_bracket(ks, loss, 1.0, False, 1.5)


def test_mean_interval_uses_student_t():
    mean, low, high = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert mean_interval([0.5])[0] == 0.5 and math.isnan(mean_interval([0.5])[1])
    assert all(math.isnan(v) for v in mean_interval([]))


def test_paired_log_ratios_pair_by_seed_and_mark_censored_cells():
    frame = pd.DataFrame({
        "row": ["a"] * 6 + ["b"] * 4,
        "method": ["lib", "lib", "lib", "pca", "pca", "pca", "lib", "pca", "lib", "pca"],
        "seed": [0, 1, 2, 0, 1, 3, 0, 0, 1, 1],
        "value": [2.0, 4.0, 9.0, 4.0, 4.0, 1.0, 139, 139, 50, np.nan],
        "censored": [False] * 6 + [True, True, False, False],
    })
    pairs = paired_log_ratios(frame, "value", "lib", "pca", censored="censored")
    a = pairs[pairs["row"] == "a"].set_index("seed")
    assert list(a.index) == [0, 1]  # seeds 2 and 3 have no partner
    assert a.loc[0, "log2_ratio"] == pytest.approx(-1.0) and a.loc[1, "log2_ratio"] == 0.0
    b = pairs[pairs["row"] == "b"].set_index("seed")
    assert b.loc[0, "status"] == "both censored" and math.isnan(b.loc[0, "log2_ratio"])
    assert b.loc[1, "status"] == "missing"
    one_sided = frame.assign(censored=[False] * 6 + [True, False, False, False])
    pairs = paired_log_ratios(one_sided, "value", "lib", "pca", censored="censored")
    assert pairs.set_index(["row", "seed"]).loc[("b", 0), "status"] == "method censored"


def test_edge_area_of_a_step_is_its_share_of_the_edges():
    n = 64  # halvings 64, 32, ..., 1; the score recovers fully from 8 edges kept
    evaluations = {k: (1.0 if k >= 8 else 0.2) for k in [0, *[n >> j for j in range(7)]]}
    # between 4 (deficit 1) and 8 (deficit 0) the trapezoid takes half: (4 + 2) / 64
    assert edge_area(evaluations, 1.0, True) == pytest.approx(6 / 64)
    # a loss (lower is better) gives the same share
    loss = {k: 2.0 - v for k, v in evaluations.items()}
    assert edge_area(loss, 1.0, False) == pytest.approx(6 / 64)


def test_edge_area_needs_every_halving_and_a_gap():
    bisection = {0: 0.2, 32: 1.0, 16: 1.0, 8: 1.0, 4: 0.2, 6: 0.5, 64: 1.0}  # no 2 or 1
    assert math.isnan(edge_area(bisection, 1.0, True))
    assert math.isnan(edge_area({k: 1.0 for k in [0, 1, 2, 4]}, 1.0, True))  # no gap
    assert has_halvings([0, 1, 2, 5], 5) and not has_halvings([1, 2, 5], 5)
