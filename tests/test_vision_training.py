"""The vision MLP and its training: the E2 shape, folding, learning, and the checkpoint cache."""

from pathlib import Path

import pytest
import torch

from interbasis.basis.fold import fold_bias
from interbasis.data.vision import FASHION_DEFAULT_ROOT, load_fashion_mnist
from interbasis.models.vision import make_mlp, node_layer_names
from interbasis.training.checkpoint import load_checkpoint
from interbasis.training.vision import (
    VisionRun,
    VisionTrainConfig,
    load_or_train,
    model_from_checkpoint,
)
from vision_files import write_fashion_files


def test_mlp_has_the_e2_shape_and_folds_exactly():
    model = make_mlp(3072, [100, 100], 10, seed=0).double()
    assert node_layer_names(model) == ["0", "2", "4", "output"]
    assert [m.weight.shape for m in model if isinstance(m, torch.nn.Linear)] == [
        (100, 3072), (100, 100), (10, 100)]
    x = torch.rand(7, 3072, dtype=torch.float64)
    torch.testing.assert_close(fold_bias(model)(x), model(x), rtol=0, atol=1e-12)


def test_init_depends_on_the_seed_only():
    torch.manual_seed(123)
    before = torch.rand(1)
    a, b, c = (make_mlp(20, [8], 3, seed=s) for s in (0, 0, 1))
    torch.manual_seed(123)
    assert torch.rand(1) == before  # building a model leaves the global RNG alone
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)


def small_run(data, seed: int = 0, **train) -> VisionRun:
    return VisionRun.for_data(data, hidden=(16, 16), seed=seed, threads=1,
                              train=VisionTrainConfig(batch_size=32, **train))


def test_training_learns_and_the_cache_resumes_a_prefix(tmp_path):
    data = load_fashion_mnist(write_fashion_files(tmp_path / "data", n_train=300, n_test=100))
    checkpoints = tmp_path / "checkpoints"
    one = load_or_train(small_run(data, epochs=1), data, checkpoints, log=None)
    assert one.steps_trained == 10  # 300 images in batches of 32
    two = load_or_train(small_run(data, epochs=2), data, checkpoints, log=None)  # resumed
    assert two.steps_trained == 10 and two.path == one.path
    fresh = load_or_train(small_run(data, epochs=2), data, tmp_path / "fresh", log=None)
    assert fresh.steps_trained == 20
    for resumed, scratch in zip(two.model.parameters(), fresh.model.parameters()):
        torch.testing.assert_close(resumed, scratch, rtol=0, atol=0)
    checkpoint = load_checkpoint(two.path)
    assert checkpoint["epoch"] == 2 and checkpoint["curve"]["epoch"] == [0, 1, 2]
    assert checkpoint["test_acc"] > 0.5 > checkpoint["curve"]["test_acc"][0]  # chance: 0.1
    again = load_or_train(small_run(data, epochs=2), data, checkpoints, log=None)
    assert again.steps_trained == 0
    x = data.test_images[:5]
    torch.testing.assert_close(model_from_checkpoint(two.path)(x), two.model(x))


def test_the_cache_key_covers_what_changes_the_trajectory(tmp_path):
    data = load_fashion_mnist(write_fashion_files(tmp_path / "data", n_train=60, n_test=20))
    base = small_run(data)
    assert small_run(data, epochs=3).trajectory() == base.trajectory()
    for changed in (small_run(data, seed=1), small_run(data, lr=1e-2),
                    small_run(data, train_samples=30),
                    VisionRun.for_data(data, hidden=(8, 16))):
        assert changed.trajectory() != base.trajectory()


@pytest.mark.skipif(not Path(FASHION_DEFAULT_ROOT).is_dir(),
                    reason="real Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
def test_one_epoch_on_real_fashion_mnist_beats_80_percent(tmp_path):
    data = load_fashion_mnist()
    run = VisionRun.for_data(data, threads=1, train=VisionTrainConfig(epochs=1))
    result = load_or_train(run, data, tmp_path, log=None)
    assert result.steps_trained == 938  # ceil(60000 / 64)
    assert result.checkpoint["test_acc"] > 0.8  # an MLP reaches ~84% after one epoch
