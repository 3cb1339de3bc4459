"""Degeneracy source 3 streamed over batches: firing patterns per ReLU layer of real models."""

import pytest
import torch
from torch import nn

from interbasis.analysis.degeneracy import firing_patterns, relu_sync_by_layer
from interbasis.basis.types import NodeLayer
from interbasis.metrics.degeneracy import (
    FiringPatterns,
    rank_gram,
    rank_gram_relative,
    rank_jacobian,
    relu_sync,
)
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.models.vision import make_mlp
from interbasis.training.vision import relu_layers


def firing_with_duplicates(n_samples: int, seed: int = 0) -> torch.Tensor:
    """Random firing of 30 neurons where 10 columns copy others and 3 are dead: 18 distinct."""
    generator = torch.Generator().manual_seed(seed)
    firing = torch.rand(n_samples, 30, generator=generator) > 0.5
    firing[:, 20:30] = firing[:, 0:10]
    firing[:, 10:13] = False
    return firing


@pytest.mark.parametrize("batch_size", [1, 7, 8, 13, 1000])
def test_streamed_patterns_match_the_whole_matrix(batch_size):
    firing = firing_with_duplicates(203)
    patterns = FiringPatterns()
    for batch in firing.split(batch_size):
        patterns.update(batch)
    assert patterns.n_samples == 203 and patterns.n_neurons == 30
    assert patterns.distinct() == 18
    assert patterns.sync() == pytest.approx(relu_sync(firing)) == pytest.approx(18 / 30)


def test_neurons_differing_in_one_sample_of_a_late_batch_are_distinct():
    firing = torch.zeros(100, 2, dtype=torch.bool)
    firing[97, 1] = True  # the last, padded batch is the only difference
    patterns = FiringPatterns()
    for batch in firing.split(16):
        patterns.update(batch)
    assert patterns.distinct() == 2


def test_bad_batches_are_one_clear_error():
    patterns = FiringPatterns()
    with pytest.raises(ValueError, match="bool"):
        patterns.update(torch.ones(3, 4))
    patterns.update(torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="5 neurons after batches with 4"):
        patterns.update(torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="no batch"):
        FiringPatterns().distinct()


def test_vision_mlp_relu_layers_and_their_sync_match_brute_force():
    model = make_mlp(6, [12, 9], 3, seed=0)
    assert relu_layers(model) == ["2", "4"]
    # a bias pushed far down kills 4 neurons of the first hidden layer: they share one pattern
    with torch.no_grad():
        model[0].bias[:4] = -100.0
    x = torch.randn(301, 6, generator=torch.Generator().manual_seed(0))
    first = model[0](x) > 0
    second = model[2](model[1](model[0](x))) > 0
    expected = {"degeneracy/relu_sync/2": relu_sync(first),
                "degeneracy/relu_sync/4": relu_sync(second)}
    assert expected["degeneracy/relu_sync/2"] <= 9 / 12
    for batch_size in (64, 1000):
        assert relu_sync_by_layer(model, x, ["2", "4"], batch_size=batch_size) == expected


def test_modadd_mlp_sync_counts_the_hidden_firing_of_every_pair():
    cfg = ModAddTransformerConfig(d_vocab=8, d_model=16, n_heads=2, d_head=8, d_mlp=24)
    model = ModAddTransformer(cfg, seed=0)
    tokens = torch.cartesian_prod(torch.arange(7), torch.arange(7))
    tokens = torch.cat([tokens, torch.full((49, 1), 7)], dim=1)
    pre = []
    handle = model.blocks[0].mlp.hook_pre.register_forward_hook(
        lambda module, args, out: pre.append(out.detach()))
    with torch.no_grad():
        model(tokens)
    handle.remove()
    expected = relu_sync(pre[0].reshape(-1, 24) > 0)
    found = firing_patterns(model, tokens, ["blocks.0.mlp.hook_post"], batch_size=10)
    assert found["blocks.0.mlp.hook_post"].n_samples == 49
    assert found["blocks.0.mlp.hook_post"].sync() == pytest.approx(expected)


def test_a_model_ending_in_a_relu_can_name_its_output():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    expected = relu_sync(model[0](x) > 0)
    assert relu_sync_by_layer(model, x, ["output"]) == {"degeneracy/relu_sync/output": expected}


def test_relative_gram_rank_drops_directions_that_carry_almost_no_variance():
    eigenvalues = torch.tensor([1.0, 0.5, 1e-3, 1e-8, 1e-13, 0.0], dtype=torch.float64)
    layer = NodeLayer(name="x", C=torch.eye(6, dtype=torch.float64),
                      C_pinv=torch.eye(6, dtype=torch.float64), eigenvalues=eigenvalues,
                      mean=torch.zeros(6, dtype=torch.float64), gram_eigenvalues=eigenvalues * 4,
                      jacobian_eigenvalues=eigenvalues)
    assert rank_gram(layer, tau=1e-15) == 5  # docs/method.md's absolute tau keeps 1e-13
    assert rank_gram_relative(layer, rel=1e-6) == 3 and rank_gram_relative(layer, rel=1e-9) == 4
    assert rank_jacobian(layer, rel=1e-6) == 3
