"""The three bases of a node layer: neuron, PCA and LIB (docs/method.md §4).

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

METHODS = ("lib", "pca", "neuron", "ngf")  # ngf: LIB by naive gradient flow (basis/ngf.py)


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
