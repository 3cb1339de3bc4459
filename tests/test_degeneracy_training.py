"""Degeneracy over training (E4): modular-addition snapshots and the measures at each."""

import pytest
import torch

from interbasis.analysis.degeneracy import measures_over_training, relu_sync_by_layer
from interbasis.data.modadd import make_modadd_split
from interbasis.models.modadd import ModAddTransformerConfig
from interbasis.training.checkpoint import CheckpointError, checkpoint_path
from interbasis.training.modadd import (
    FAMILY,
    RELU_LAYER,
    ModAddDataConfig,
    ModAddRun,
    ModAddTrainConfig,
    load_or_train,
    load_snapshots,
    snapshot_path,
)

LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
          "output"]


def tiny_run(steps: int, snapshot_every: int = 0) -> ModAddRun:
    return ModAddRun(seed=0, model=ModAddTransformerConfig(d_vocab=12, d_model=16, n_heads=2,
                                                           d_head=8, d_mlp=32),
                     data=ModAddDataConfig(name="modadd", p=11, train_fraction=0.5),
                     train=ModAddTrainConfig(steps=steps, eval_every=10, save_every=10,
                                             snapshot_every=snapshot_every), threads=1)


def test_snapshots_are_the_models_of_shorter_runs(tmp_path):
    result = load_or_train(tiny_run(30, snapshot_every=15), tmp_path / "a", log=None)
    models = load_snapshots(result.path, [0, 15, 30])
    shorter = load_or_train(tiny_run(15), tmp_path / "b", log=None).model
    for name, value in shorter.state_dict().items():
        torch.testing.assert_close(models[1].state_dict()[name], value, rtol=0, atol=0)
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(models[2].state_dict()[name], value, rtol=0, atol=0)
    assert not torch.equal(models[0].embed.W_E, models[2].embed.W_E)
    assert not snapshot_path(result.path, 10).exists()  # only multiples of snapshot_every


def test_a_run_without_snapshots_says_so_in_one_error(tmp_path):
    load_or_train(tiny_run(10), tmp_path, log=None)
    path = checkpoint_path(tmp_path, FAMILY, 0, tiny_run(10).trajectory())
    with pytest.raises(CheckpointError,
                       match=r"no snapshots of .* at steps \[0, 5, 10\] .*empty checkpoint dir"):
        load_snapshots(path, [0, 5, 10])


def test_measures_over_training_match_a_run_summary_at_each_step(tmp_path):
    run = tiny_run(20, snapshot_every=10)
    result = load_or_train(run, tmp_path, log=None)
    split = make_modadd_split(**run.data.split_settings())
    snapshots = list(zip([0, 10, 20], load_snapshots(result.path, [0, 10, 20]), strict=True))
    table = measures_over_training(
        snapshots, split.train_tokens, LAYERS, [RELU_LAYER],
        scores=lambda model: {"params": sum(p.numel() for p in model.parameters())},
        method="lib", truncation_threshold=1e-15, batch_size=64)
    assert list(table["step"]) == [0, 10, 20] and (table["params"] > 0).all()
    for layer in LAYERS[:-1]:
        for kind in ("gram", "jacobian", "basis"):
            assert (table[f"rank/{kind}/{layer}"] <= 17).all()  # d_model + the constant
    assert table[f"degeneracy/relu_sync/{RELU_LAYER}"].between(0, 1, inclusive="right").all()
    for layer in LAYERS[:-1]:  # the relative cut keeps at most what the absolute tau keeps
        assert (table[f"rank/gram_rel/{layer}"] <= table[f"rank/gram/{layer}"]).all()
        assert (table[f"rank/jacobian_rel/{layer}"] <= table[f"rank/jacobian/{layer}"]).all()
    assert "sparsity/edges_99/blocks.0.hook_resid_post->output" in table
    # the row at the last step is what a run of the final model reports
    final = relu_sync_by_layer(result.model, split.train_tokens, [RELU_LAYER])
    assert table[f"degeneracy/relu_sync/{RELU_LAYER}"].iloc[-1] == pytest.approx(
        final[f"degeneracy/relu_sync/{RELU_LAYER}"])
