"""The random-rotation baseline (method="random", basis/bases.py: random_basis): PCA's kept
subspace in a seeded Haar-random orthonormal basis."""

import torch

from conftest import MLP_LAYERS
from interbasis import build_graph
from interbasis.basis.bases import centring_matrices, haar_orthogonal, pca_basis, random_basis

EYE_TOL = dict(atol=1e-10, rtol=0)


def _gram_and_mean(n=400, d=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d - 1, generator=g, dtype=torch.float64) @ torch.randn(
        d - 1, d - 1, generator=g, dtype=torch.float64)
    x[:, -1] = 0.0  # one dead direction: PCA drops it, so must the random basis
    x = torch.cat([x + 3.0, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # constant last
    mean = x.mean(0)
    centred = x.clone()
    centred[:, :-1] -= mean[:-1]
    return centred.T @ centred / n, mean


def test_haar_matrix_is_orthogonal_and_seeded():
    Q = haar_orthogonal(6, torch.Generator().manual_seed(3), torch.float64)
    torch.testing.assert_close(Q.T @ Q, torch.eye(6, dtype=torch.float64), **EYE_TOL)
    again = haar_orthogonal(6, torch.Generator().manual_seed(3), torch.float64)
    other = haar_orthogonal(6, torch.Generator().manual_seed(4), torch.float64)
    assert torch.equal(Q, again) and not torch.allclose(Q, other)


def test_random_basis_spans_pca_subspace_with_constant_first():
    gram, mean = _gram_and_mean()
    pca = pca_basis(gram, mean, center=True, tau=1e-12)
    rand = random_basis(gram, mean, center=True, tau=1e-12, seed=0)
    assert rand.C.shape == pca.C.shape  # the dead direction is dropped by both
    torch.testing.assert_close(rand.C_pinv @ rand.C, torch.eye(rand.C.shape[1],
                                                               dtype=torch.float64), **EYE_TOL)
    # the same subspace: the projector onto the kept directions is unchanged
    torch.testing.assert_close(rand.C @ rand.C_pinv, pca.C @ pca.C_pinv, atol=1e-9, rtol=0)
    torch.testing.assert_close(rand.C[:, 0], pca.C[:, 0], **EYE_TOL)  # the constant feature
    # not PCA: the non-constant columns are rotated away from PCA's axes
    overlap = (pca.C_pinv[1:] @ rand.C[:, 1:]).abs()
    assert overlap.max() < 0.999


def test_random_features_sorted_by_second_moment():
    gram, mean = _gram_and_mean()
    rand = random_basis(gram, mean, center=True, tau=1e-12, seed=1)
    _, Y_inv = centring_matrices(mean, center=True)
    directions = Y_inv @ rand.C  # U Q: the rotated eigen-directions of the centred Gram
    moments = (directions.T @ gram @ directions).diagonal()
    torch.testing.assert_close(rand.eigenvalues, moments, atol=1e-9, rtol=1e-9)
    assert torch.all(rand.eigenvalues[1:-1] >= rand.eigenvalues[2:])
    # a rotation keeps the total variance of the kept subspace
    pca = pca_basis(gram, mean, center=True, tau=1e-12)
    torch.testing.assert_close(rand.eigenvalues.sum(), pca.eigenvalues.sum())


def test_random_method_in_build_graph_is_seeded(mlp, inputs):
    one = build_graph(mlp, inputs, MLP_LAYERS, method="random", seed=0)
    again = build_graph(mlp, inputs, MLP_LAYERS, method="random", seed=0)
    other = build_graph(mlp, inputs, MLP_LAYERS, method="random", seed=1)
    pca = build_graph(mlp, inputs, MLP_LAYERS, method="pca")
    for a, b, c, p in zip(one.layers[:-1], again.layers[:-1], other.layers[:-1],
                          pca.layers[:-1]):
        assert torch.equal(a.C, b.C) and a.C.shape == p.C.shape
        if a.rank > 2:  # a rotation of two or more non-constant directions
            assert not torch.allclose(a.C, c.C)
        torch.testing.assert_close(a.C @ a.C_pinv, p.C @ p.C_pinv, atol=1e-8, rtol=0)
    assert one.method == "random" and len(one.edges) == len(pca.edges)
