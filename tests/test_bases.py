"""Invariants of the neuron, PCA and LIB bases (docs/method.md §8), float64 on tiny models."""

import pytest
import torch
from torch import nn

from conftest import MLP_LAYERS, activations
from interbasis import build_graph
from interbasis.basis.bases import centring_matrices, gram_spectrum
from interbasis.basis.stats import RunningMoments

EYE_TOL = dict(atol=1e-10, rtol=0)


@pytest.mark.parametrize("method", ["lib", "pca", "neuron"])
def test_left_inverse(mlp, inputs, method):
    graph = build_graph(mlp, inputs, MLP_LAYERS, method=method)
    for layer in graph.layers:
        assert layer.C.dtype == torch.float64 and layer.C.device.type == "cpu"
        assert layer.C.shape == (layer.width, layer.rank) == layer.C_pinv.T.shape
        torch.testing.assert_close(layer.C_pinv @ layer.C,
                                   torch.eye(layer.rank, dtype=torch.float64), **EYE_TOL)
    assert graph.layers[-1].name == "output"
    assert torch.equal(graph.layers[-1].C, torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("center", [True, False])
def test_pca_is_centring_times_gram_eigenvectors(mlp, inputs, center):
    graph = build_graph(mlp, inputs, MLP_LAYERS, method="pca", center=center, edges=False)
    x = activations(mlp, inputs, "2")
    moments = RunningMoments(x.shape[1])
    moments.update(x)
    D, U = gram_spectrum(moments.gram(center), center)
    layer = graph.layer("2")
    keep = D > 1e-15
    Y, _ = centring_matrices(moments.mean, center)
    expected = Y @ U[:, keep] if center else U[:, keep]
    # eigenvectors are defined up to sign
    signs = torch.sign((expected * layer.C).sum(0))
    torch.testing.assert_close(layer.C, expected * signs, **EYE_TOL)
    torch.testing.assert_close(layer.eigenvalues, D[keep], **EYE_TOL)
    if center:
        centred = (x - moments.mean) @ U[:, keep]
        second_moments = centred[:, 1:].T @ centred[:, 1:] / x.shape[0]
        torch.testing.assert_close(second_moments, torch.diag(layer.eigenvalues[1:]), **EYE_TOL)


def test_lib_features_have_second_moments_lambda_and_zero_mean(mlp, inputs):
    graph = build_graph(mlp, inputs, MLP_LAYERS, method="lib", edges=False)
    for name in MLP_LAYERS[:-1]:
        layer = graph.layer(name)
        x = activations(mlp, inputs, name)
        features = x @ layer.C
        torch.testing.assert_close(features.T @ features / x.shape[0],
                                   torch.diag(layer.eigenvalues), atol=1e-10, rtol=1e-8)
        torch.testing.assert_close(features[:, 1:].mean(0),
                                   torch.zeros(layer.rank - 1, dtype=torch.float64), **EYE_TOL)
        # feature 0 is the constant, scaled by sqrt(Lambda_0)
        torch.testing.assert_close(features[:, 0], torch.full_like(features[:, 0],
                                   layer.eigenvalues[0].sqrt().item()), **EYE_TOL)


def test_only_the_constant_feature_writes_the_constant_coordinate(mlp, inputs):
    layer = build_graph(mlp, inputs, MLP_LAYERS, method="lib", edges=False).layer("2")
    assert torch.all(layer.C_pinv[1:, -1].abs() < 1e-12)
    assert layer.C_pinv[0, -1].abs() > 1e-3
    # C's last row subtracts the mean: C[last, j] = -mu . C[:-1, j]
    expected_last_row = -(layer.mean[:-1] @ layer.C[:-1, 1:])
    torch.testing.assert_close(layer.C[-1, 1:], expected_last_row, **EYE_TOL)
    assert expected_last_row.abs().max() > 1e-3


def test_lib_truncates_directions_without_variance_or_downstream_effect():
    torch.manual_seed(0)
    # 8 logits, so M' is not rank-limited by the output width
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 8)).double()
    with torch.no_grad():
        model[0].weight[0] = 0.0
        model[0].bias[0] = -1.0  # neuron 0 never fires: no variance
        model[2].weight[:, 1] = 0.0  # neuron 1 fires but nothing reads it: no downstream effect
    x = torch.randn(300, 4, dtype=torch.float64)
    pca = build_graph(model, x, ["2", "output"], method="pca", edges=False)
    lib = build_graph(model, x, ["2", "output"], method="lib", edges=False)
    assert pca.layers[0].rank == 6  # 7 coordinates, the dead neuron has none
    assert lib.layers[0].rank == 5  # and LIB drops the unread one too
    assert torch.all(lib.layers[0].C[1, 1:].abs() < 1e-10)  # neuron 1 plays no part in features
    assert (lib.layers[0].gram_eigenvalues > 1e-15).sum() == 6


def test_rotating_the_final_layer_leaves_earlier_bases_and_edges_unchanged(mlp, inputs):
    rotation = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    rotated = nn.Sequential(*mlp, nn.Linear(4, 4, bias=False).double())
    with torch.no_grad():
        rotated[-1].weight.copy_(rotation.T)
    layers = ["0", "2", "4", "output"]
    plain = build_graph(mlp, inputs, layers, method="lib")
    turned = build_graph(rotated, inputs, layers, method="lib")
    for a, b in zip(plain.layers[:-1], turned.layers[:-1]):
        torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-10, rtol=1e-8)
        # compare column spaces through the projectors onto them (signs may flip)
        torch.testing.assert_close(a.C @ a.C_pinv, b.C @ b.C_pinv, atol=1e-8, rtol=0)
    for a, b in zip(plain.edges[:-1], turned.edges[:-1]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    assert not torch.allclose(plain.edges[-1], turned.edges[-1])


def test_neuron_basis_puts_the_constant_first(mlp, inputs):
    layer = build_graph(mlp, inputs, MLP_LAYERS, method="neuron", edges=False).layer("2")
    assert layer.C[-1, 0] == 1 and layer.rank == layer.width
    assert torch.all(layer.eigenvalues[1:-1] >= layer.eigenvalues[2:])
    assert torch.equal(layer.C @ layer.C_pinv, torch.eye(layer.width, dtype=torch.float64))
