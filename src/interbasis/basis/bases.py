"""The bases of a node layer: neuron, PCA, LIB (docs/method.md §4) and a random-rotation baseline.

Pure functions of a layer's statistics (mean, Gram) and, for LIB, the Jacobian Gram M' of the
section that follows it. Row-vector convention: features f = x C, reconstruction x = f C_pinv.
Layers that carry a constant coordinate keep it last in activation space and first in the basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interbasis.basis import eigh_device

# ngf: LIB by naive gradient flow (basis/ngf.py); random: PCA's subspace, Haar-rotated
METHODS = ("lib", "pca", "neuron", "ngf", "random")


@dataclass
class Basis:
    C: Float[Tensor, "d r"]
    C_pinv: Float[Tensor, "r d"]
    eigenvalues: Float[Tensor, " r"]


def sorted_eigh(matrix: Float[Tensor, "d d"]) -> tuple[Float[Tensor, " d"], Float[Tensor, "d d"]]:
    """Eigen-decomposition of a symmetric matrix with absolute eigenvalues sorted descending.

    Absolute values because round-off makes tiny eigenvalues of a PSD matrix slightly negative.
    """
    values, vectors = eigh_device.eigh((matrix + matrix.T) / 2)  # a GPU build's: on the GPU
    values = values.abs()
    order = torch.argsort(values, descending=True, stable=True)
    return values[order], vectors[:, order]


def gram_spectrum(gram: Tensor, center: bool) -> tuple[Tensor, Tensor]:
    """Eigenvalues D and eigenvectors U of the Gram, with the constant direction first when centred.

    The centred Gram is blockdiag(covariance, 1), so the constant direction is exactly e_last with
    eigenvalue 1; taking it out of the eigen-solver keeps it exact even when the covariance has an
    eigenvalue of 1 too.
    """
    if not center:
        return sorted_eigh(gram)
    d = gram.shape[0]
    values, vectors = sorted_eigh(gram[:-1, :-1])
    U = torch.zeros(d, d, dtype=gram.dtype)
    U[-1, 0] = 1.0
    U[:-1, 1:] = vectors
    D = torch.cat([torch.ones(1, dtype=gram.dtype), values])
    return D, U


def centring_matrices(mean: Tensor, center: bool) -> tuple[Tensor, Tensor]:
    """Y with x Y = x - mu on all coordinates but the constant, and Y^-1 (docs/method.md §4.2 step
    4)."""
    d = mean.shape[0]
    Y = torch.eye(d, dtype=mean.dtype)
    Y_inv = torch.eye(d, dtype=mean.dtype)
    if center:
        Y[-1, :-1] = -mean[:-1]
        Y_inv[-1, :-1] = mean[:-1]
    return Y, Y_inv


def pca_basis(gram: Tensor, mean: Tensor, center: bool, tau: float) -> Basis:
    """Centred-svd basis: C = Y U, C_pinv = U^T Y^-1, directions with D <= tau dropped.

    Not whitened: PCA feature i has second moment D_i (feature 0 is the constant, D_0 = 1).
    """
    D, U = gram_spectrum(gram, center)
    keep = D > tau
    if center:
        keep[0] = True
    D, U = D[keep], U[:, keep]
    Y, Y_inv = centring_matrices(mean, center)
    return Basis(C=Y @ U, C_pinv=U.T @ Y_inv, eigenvalues=D)


def lib_basis(gram: Tensor, mean: Tensor, jacobian_gram: Tensor, center: bool, tau: float) -> Basis:
    """The Local Interaction Basis (docs/method.md §4.3) from the Gram and M' of the section
    downstream.

    The constant direction is always kept (even with Lambda_0 < tau, where it is left unscaled) so
    that column 0 is the constant feature in every layer that has one.
    """
    pca = pca_basis(gram, mean, center, tau)
    sqrt_D = pca.eigenvalues.sqrt()
    R = pca.C / sqrt_D
    R_pinv = sqrt_D[:, None] * pca.C_pinv
    M = R_pinv @ jacobian_gram @ R_pinv.T
    if center:
        values, vectors = sorted_eigh(M[1:, 1:])
        r = M.shape[0]
        V = torch.zeros(r, r, dtype=M.dtype)
        V[0, 0] = 1.0
        V[1:, 1:] = vectors
        Lambda = torch.cat([M[0, 0].abs().reshape(1), values])
        keep = Lambda >= tau
        keep[0] = True
    else:
        Lambda, V = sorted_eigh(M)
        keep = Lambda >= tau
    Lambda, V = Lambda[keep], V[:, keep]
    scale = Lambda.sqrt()
    if center and Lambda[0] < tau:
        scale[0] = 1.0
    C = (R @ V) * scale
    C_pinv = (V.T @ R_pinv) / scale[:, None]
    return Basis(C=C, C_pinv=C_pinv, eigenvalues=Lambda)


def haar_orthogonal(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """An n x n orthogonal matrix drawn from the Haar measure: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q (without that fix QR's sign convention biases the draw)."""
    gaussian = torch.randn(n, n, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(gaussian)
    signs = torch.sign(R.diagonal())
    signs[signs == 0] = 1.0
    return (Q * signs).to(dtype)


def random_basis(gram: Tensor, mean: Tensor, center: bool, tau: float, seed: int) -> Basis:
    """The 'no structure' baseline: PCA's kept subspace in a Haar-random orthonormal basis.

    The subspace is exactly PCA's (the centred Gram's eigen-directions with D > tau, plus the
    constant direction, which stays first and unrotated); the non-constant PCA directions are
    rotated by a Haar-random orthogonal matrix Q drawn from ``seed``: C = Y U Q, C_pinv = Q^T U^T
    Y^-1. Like PCA the features are not whitened. They are sorted by their second moment
    (diag(Q^T D Q), the returned eigenvalues), so that 'keep the first k' is as fair as for the
    neuron basis; a random basis has no better order.
    """
    pca = pca_basis(gram, mean, center, tau)
    r = pca.C.shape[1]
    start = 1 if center else 0  # the constant feature is not rotated
    Q = torch.eye(r, dtype=pca.C.dtype)
    generator = torch.Generator().manual_seed(seed)
    Q[start:, start:] = haar_orthogonal(r - start, generator, pca.C.dtype)
    variance = (Q * (pca.eigenvalues[:, None] * Q)).sum(0)  # diag(Q^T D Q)
    order = torch.cat([torch.arange(start),
                       start + torch.argsort(variance[start:], descending=True, stable=True)])
    Q = Q[:, order]
    return Basis(C=pca.C @ Q, C_pinv=Q.T @ pca.C_pinv, eigenvalues=variance[order])


def neuron_basis(gram: Tensor, has_constant: bool) -> Basis:
    """Neurons as features: a permutation with the constant first, then neurons by variance.

    Sorting by variance (diagonal of the centred Gram) makes 'keep the first k' ablations a fair
    baseline; the features themselves are the unrotated neurons.
    """
    d = gram.shape[0]
    variance = gram.diagonal()
    n_neurons = d - 1 if has_constant else d
    order = torch.argsort(variance[:n_neurons], descending=True, stable=True)
    if has_constant:
        order = torch.cat([torch.tensor([d - 1]), order])
    C = torch.eye(d, dtype=gram.dtype)[:, order]
    return Basis(C=C, C_pinv=C.T.clone(), eigenvalues=variance[order].clone())


def output_basis(gram: Tensor) -> Basis:
    """The unrotated logits: identity, eigenvalues the second moments of the logits."""
    d = gram.shape[0]
    eye = torch.eye(d, dtype=gram.dtype)
    return Basis(C=eye, C_pinv=eye.clone(), eigenvalues=gram.diagonal().clone())
