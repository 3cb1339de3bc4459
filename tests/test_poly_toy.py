"""The incidental-polysemanticity toy (E5): gradient, counts, training, cache and runs."""

import json

import pandas as pd
import pytest
import torch

from hydra_runs import run_in_process
from interbasis.models.poly_toy import (
    as_sequential,
    init_weights,
    polysemantic_neurons,
    toy_gradient,
    toy_loss,
    weight_stats,
)
from interbasis.training.poly_toy import (
    PolyToyRun,
    PolyToyTrainConfig,
    feature_purity,
    load_or_train,
    train,
)


@pytest.mark.parametrize("l1_lambda", [0.0, 1e-3, 0.5])
def test_analytic_gradient_matches_autograd(l1_lambda):
    W = init_weights(9, 14, seed=3, dtype=torch.float64)
    W[0, :3] = 0.0  # sign(0) = 0 in both
    W.requires_grad_()
    error, l1 = toy_loss(W, l1_lambda)
    (error + l1).backward()
    torch.testing.assert_close(toy_gradient(W.detach(), l1_lambda), W.grad)


def test_init_is_n_0_1_over_m_and_reproducible():
    W = init_weights(256, 1024, seed=0)
    assert W.shape == (256, 1024) and torch.equal(W, init_weights(256, 1024, seed=0))
    assert W.var().item() == pytest.approx(1 / 1024, rel=0.02)
    with pytest.raises(ValueError, match="n and m must be >= 1"):
        init_weights(0, 4, seed=0)


def test_polysemantic_neurons_count_neurons_with_two_features_in_the_band():
    W = torch.zeros(4, 5)
    W[0, 0] = W[1, 0] = 1.0  # neuron 0: two features in [0.8, 1.2] -> polysemantic
    W[2, 1], W[3, 1] = -0.9, 0.5  # neuron 1: one in the band, one below it
    W[3, 2] = 1.3  # above the band
    W[2, 3] = W[3, 3] = W[0, 3] = 1.19  # neuron 3: three features
    assert polysemantic_neurons(W) == 2
    stats = weight_stats(W)
    assert stats["toy/max_features_per_neuron"] == 3 and stats["toy/neurons_used"] == 3
    assert stats["toy/expected_polysemantic"] == pytest.approx(16 / 20)
    assert stats["toy/features_represented"] == 4  # feature 3 only through neuron 3
    assert stats["toy/features_on_one_neuron"] == 2  # features 1 and 3
    assert stats["toy/weights_between"] == 2  # 0.5 and 1.3


def test_the_sequential_form_computes_relu_x_w_wt():
    W = init_weights(6, 10, seed=1)
    x = torch.randn(7, 6)
    torch.testing.assert_close(as_sequential(W)(x), torch.relu(x @ W @ W.T))


def test_purity_is_one_for_a_one_hot_feature_and_a_half_for_two():
    features = torch.zeros(8, 3, dtype=torch.float64)
    features[2, 0] = 1.0
    features[[1, 5], 1] = 1.0
    purity = feature_purity(features)
    assert purity[0] == pytest.approx(7 / 8) and purity[2] == 0.0
    assert purity[1] < 0.5


def test_training_settles_every_feature_on_a_neuron():
    """A 12-feature toy with 48 neurons and the paper's 7,500 steps ends like the paper's:
    reconstruction ~0 and every feature held by exactly one neuron with a weight near 1."""
    result = train(PolyToyRun(n=12, m=48, seed=0, train=PolyToyTrainConfig(log_every=1500)))
    stats = weight_stats(result.W)
    assert stats["toy/features_on_one_neuron"] == 12 and stats["toy/weights_in_band"] == 12
    assert stats["toy/frac_weights_below_0.01"] > 0.9
    history = result.history
    assert list(history["step"]) == [0, 1500, 3000, 4500, 6000, 7500]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] / 10
    assert history["reconstruction"].iloc[-1] < 1e-3
    assert history["polysemantic_neurons"].iloc[-1] == stats["toy/polysemantic_neurons"]
    assert result.steps_per_s > 0


def test_the_cache_returns_the_same_weights_without_training(tmp_path):
    run = PolyToyRun(n=5, m=7, seed=2, train=PolyToyTrainConfig(steps=30, log_every=10))
    first = load_or_train(run, tmp_path)
    second = load_or_train(run, tmp_path)
    assert first.steps_trained == 30 and second.steps_trained == 0
    assert torch.equal(first.W, second.W) and first.path == second.path
    pd.testing.assert_frame_equal(first.history, second.history)
    other = load_or_train(PolyToyRun(n=5, m=7, seed=2, train=PolyToyTrainConfig(
        steps=30, l1_lambda=0.1)), tmp_path)
    assert other.path != first.path and other.steps_trained == 30


@pytest.mark.integration
def test_toy_runs_through_the_hydra_entry_point_with_and_without_a_graph(tmp_path):
    out = run_in_process("family=poly_toy", "debug=tiny", "model.m=16", results=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "runs" / "debug" / "family=poly_toy,model.m=16"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "poly_toy" and summary["toy/expected_polysemantic"] == 144 / 64
    assert summary["rank/gram/1"] <= 12  # 12 inputs span at most 12 hidden directions
    assert 0 < summary["degeneracy/relu_sync/output"] <= 1
    assert 0 <= summary["toy/purity_mean/1"] <= 1
    training = pd.read_csv(run_dir / "toy_training.csv")
    assert training["step"].iloc[-1] == 400
    assert training["polysemantic_neurons"].iloc[-1] == summary["toy/polysemantic_neurons"]
    features = pd.read_csv(run_dir / "toy_features.csv")
    assert set(features["layer"].astype(str)) == {"0", "1"}

    out = run_in_process("family=poly_toy", "debug=tiny", "model.graph=false",
                         "train.l1_lambda=0.01", results=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "runs" / "debug" / "family=poly_toy,model.graph=false,train.l1_lambda=0.01"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "toy/polysemantic_neurons" in summary and "degeneracy/relu_sync/output" in summary
    assert not any(key.startswith("rank/") for key in summary)
    assert not list(run_dir.glob("graph_*.pt")) and (run_dir / "toy_training.csv").is_file()


def test_a_toy_cached_before_the_shared_loop_still_loads(tmp_path):
    """Old cache entries kept W and the curve ("history") at the top of the checkpoint."""
    from interbasis.training.checkpoint import checkpoint_path, save_checkpoint

    run = PolyToyRun(n=5, m=7, seed=2, train=PolyToyTrainConfig(steps=30, log_every=10))
    trained = train(run)
    save_checkpoint(checkpoint_path(tmp_path, "poly_toy", run.seed, run.trajectory()),
                    {"family": "poly_toy", "seed": run.seed, "step": run.train.steps,
                     "trajectory": run.trajectory(), "W": trained.W,
                     "history": trained.history.to_dict(orient="list"), "steps_per_s": 1.0})
    cached = load_or_train(run, tmp_path)
    assert cached.steps_trained == 0 and torch.equal(cached.W, trained.W)
    pd.testing.assert_frame_equal(cached.history, trained.history)
