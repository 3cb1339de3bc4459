"""The small CNN of the vision family: folding, its basis on spatial positions, training, a run."""

import json

import pytest
import torch

from hydra_runs import run_in_process
from interbasis.basis import build_graph
from interbasis.basis.fold import fold_bias
from interbasis.basis.sections import capture
from interbasis.data.vision import load_fashion_mnist
from interbasis.models.cnn import SmallCNN, image_shape
from interbasis.training.vision import (
    VisionRun,
    VisionTrainConfig,
    load_or_train,
    model_from_checkpoint,
    relu_layers,
)
from vision_files import write_fashion_files

LAYERS = ["conv0", "conv1", "head", "output"]


def perturbed_cnn(shape, channels, seed=0) -> SmallCNN:
    """A float64 CNN with non-zero biases (PyTorch's init draws them small, not zero)."""
    model = SmallCNN(shape, channels, 10, seed=seed).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator,
                                             dtype=torch.float64))
    return model


@pytest.mark.parametrize(("shape", "channels"), [((1, 28, 28), [16, 32]), ((3, 32, 32), [8, 6]),
                                                 ((1, 9, 9), [3, 4])])
def test_folded_cnn_equals_the_unfolded_one(shape, channels):
    model = perturbed_cnn(shape, channels)
    x = torch.rand(6, shape[0] * shape[1] * shape[2], dtype=torch.float64,
                   generator=torch.Generator().manual_seed(1))
    folded = fold_bias(model)
    torch.testing.assert_close(folded(x), model(x), rtol=0, atol=1e-10)
    assert not model.is_bias_folded and folded.is_bias_folded and fold_bias(folded) is folded
    with torch.no_grad():
        seen = capture(folded, x, LAYERS)
    side1, side2 = (shape[1] + 1) // 2, (shape[1] + 3) // 4
    assert seen["conv0"].shape == (6, shape[1] * shape[2], shape[0] + 1)
    assert seen["conv1"].shape == (6, side1 * side1, channels[0] + 1)
    assert seen["head"].shape == (6, channels[1] + 1)
    for name in LAYERS[:-1]:  # the constant channel is exactly 1 at every position, padding too
        assert torch.equal(seen[name][..., -1], torch.ones_like(seen[name][..., -1]))
    assert side2 >= 1


def test_the_bias_rides_on_the_constant_channel():
    model = perturbed_cnn((1, 9, 9), [3, 4])
    folded = fold_bias(model)
    x = torch.rand(4, 81, dtype=torch.float64)
    with torch.no_grad():
        tokens = capture(folded, x, ["conv1"])["conv1"]
        tokens[..., -1] = 0.0  # no constant: every bias is gone from what follows
        out = folded.conv1(tokens)
        zero_bias = perturbed_cnn((1, 9, 9), [3, 4])
        zero_bias.conv1.conv.bias.zero_()
        expected = zero_bias.conv1(tokens[..., :-1])
    torch.testing.assert_close(out[..., :-1], expected, rtol=0, atol=1e-12)


def test_lib_basis_on_spatial_positions_keeps_its_invariants():
    model = perturbed_cnn((1, 9, 9), [3, 4])
    x = torch.rand(300, 81, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    graph = build_graph(model, x, LAYERS, method="lib")
    with torch.no_grad():
        seen = capture(fold_bias(model), x, LAYERS)
    for layer in graph.layers[:-1]:
        torch.testing.assert_close(layer.C_pinv @ layer.C, torch.eye(layer.C.shape[1],
                                   dtype=torch.float64), rtol=0, atol=1e-8)
        features = seen[layer.name].reshape(-1, layer.C.shape[0]) @ layer.C
        # LIB features: second moments Lambda (over samples and positions), means 0 but the constant
        torch.testing.assert_close(features.T @ features / len(features),
                                   torch.diag(layer.eigenvalues), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(features[:, 1:].mean(0), torch.zeros(layer.C.shape[1] - 1,
                                   dtype=torch.float64), rtol=0, atol=1e-8)
    assert graph.layer("conv1").n_positions == 25 and graph.layer("head").n_positions == 1
    assert all((edges >= 0).all() and edges.sum() > 0 for edges in graph.edges)


def test_image_shapes_and_relu_layers():
    assert image_shape("fashion_mnist", 784) == (1, 28, 28)
    assert image_shape("cifar10", 3072) == (3, 32, 32)
    with pytest.raises(ValueError, match="not 3 square channels"):
        image_shape("cifar10", 3000)
    assert relu_layers(SmallCNN((1, 8, 8), [2, 2], 3, seed=0)) == ["conv1", "pool"]


def test_cnn_trains_caches_and_keeps_the_mlp_cache_key(tmp_path):
    data = load_fashion_mnist(write_fashion_files(tmp_path / "data", n_train=300, n_test=100))
    run = VisionRun.for_data(data, arch="cnn", channels=(4, 8), threads=1,
                             train=VisionTrainConfig(batch_size=32, epochs=2, lr=1e-2))
    first = load_or_train(run, data, tmp_path / "checkpoints", log=None)
    # the fixture's classes are bright blocks at class-specific places, which a mean-pooled CNN
    # barely sees (pooling forgets where): the test asks for learning, not for accuracy
    losses = first.checkpoint["curve"]["train_loss"]
    assert first.steps_trained == 20 and losses[-1] < losses[0]
    again = load_or_train(run, data, tmp_path / "checkpoints", log=None)
    assert again.steps_trained == 0
    x = data.test_images[:16]
    torch.testing.assert_close(model_from_checkpoint(again.path)(x), first.model(x))
    mlp = VisionRun.for_data(data, hidden=(16, 16))
    assert "arch" not in mlp.trajectory()["model"]  # MLP checkpoints cached before the CNN hit
    assert run.trajectory()["model"]["arch"] == "cnn"


@pytest.mark.integration
def test_cnn_runs_through_the_hydra_entry_point(tmp_path):
    root = write_fashion_files(tmp_path / "fashion")
    out = run_in_process("experiment=fashion_cnn", "model.channels=[4,6]", "train.epochs=1",
                  "data.basis_samples=200", "ablation.max_samples=200", "logger=none",
                  "threads=1", results=tmp_path / "results",
                  extra_env={"INTERBASIS_FASHION_MNIST": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (path for path in (tmp_path / "results/runs/fashion_cnn").iterdir()
                  if not path.name.startswith("."))  # the run's lock files lie beside it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rank/basis/conv0"] == 2  # one grey channel and the constant
    for key in ("sparsity/edges_99/conv0->conv1", "ablation/edges_required@0.001/conv1->head",
                "degeneracy/relu_sync/conv1", "degeneracy/relu_sync/pool",
                "class_separation/best_eta2_groups/conv1"):
        assert key in summary
