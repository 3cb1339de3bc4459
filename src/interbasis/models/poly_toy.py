"""The incidental-polysemanticity toy model (docs/experiments.md E5, arXiv 2312.03096).

n one-hot features, m >= n hidden neurons, tied weights W (n x m): y = ReLU(x W W^T). Trained on
the identity batch (every feature once), with loss sum((y - x)^2) + lambda * ||W||_1. A hidden
neuron j is polysemantic when more than one feature i has |W[i, j]| in [0.8, 1.2]; the paper
predicts about n^2 / (4 m) of them at the end of training, even though there is room for one
neuron per feature.

Training works on W alone (:func:`toy_loss`, :func:`toy_gradient`); for LIB the tied model is
written out as ``nn.Sequential(Linear(n, m), Linear(m, n), ReLU())`` without biases
(:func:`as_sequential`), so the node layers are ``"0"`` (the input x), ``"1"`` (the hidden x W)
and ``"output"`` (y).

    >>> W = init_weights(256, 1024, seed=0)
    >>> polysemantic_neurons(W)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

BAND = (0.8, 1.2)  # |w| in this band counts as "feature i is represented on neuron j" (E5)


def init_weights(n: int, m: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """W ~ N(0, 1/m), (n, m), from a private generator (the global RNG is left alone)."""
    if n < 1 or m < 1:
        raise ValueError(f"n and m must be >= 1, got n={n}, m={m}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, m, generator=generator, dtype=dtype) / math.sqrt(m)


def toy_loss(W: Tensor, l1_lambda: float) -> tuple[Tensor, Tensor]:  # W: Float[Tensor, "n m"]
    """(sum of squared errors on the identity batch, lambda * ||W||_1)."""
    reconstruction = torch.relu(W @ W.T)
    error = (reconstruction - torch.eye(W.shape[0], dtype=W.dtype)).square().sum()
    return error, l1_lambda * W.abs().sum()


def toy_gradient(W: Tensor, l1_lambda: float) -> Tensor:  # W: Float[Tensor, "n m"]
    """The gradient of the summed :func:`toy_loss` in two n x n x m matmuls (autograd: three).

    With A = W W^T (symmetric), dL/dA = 2 (ReLU(A) - I) * [A > 0] =: 2 G with G symmetric, so
    dL/dW = 2 (G + G^T) W = 4 G W. The L1 term adds lambda * sign(W) (0 at 0, as autograd).
    """
    A = W @ W.T
    G = torch.relu(A)
    G.diagonal().sub_(1.0)
    G.mul_(A > 0)
    return (4.0 * G) @ W + l1_lambda * W.sign()


def represented(W: Tensor, band: tuple[float, float] = BAND) -> Tensor:
    """Bool (n, m): feature i sits on neuron j with a weight of magnitude in ``band``."""
    magnitude = W.abs()
    return (magnitude >= band[0]) & (magnitude <= band[1])


def polysemantic_neurons(W: Tensor, band: tuple[float, float] = BAND) -> int:
    """Neurons on which more than one feature has a weight in ``band`` (E5's definition)."""
    return int((represented(W, band).sum(dim=0) > 1).sum())


def weight_stats(W: Tensor, band: tuple[float, float] = BAND) -> dict[str, float | int]:
    """The final weights in a few numbers: how clean the learned code is, beyond the count."""
    n, m = W.shape
    on = represented(W, band)
    per_neuron = on.sum(dim=0)
    magnitude = W.abs()
    return {
        "toy/polysemantic_neurons": int((per_neuron > 1).sum()),
        "toy/expected_polysemantic": n * n / (4 * m),  # the paper's n^2 / (4m)
        "toy/max_features_per_neuron": int(per_neuron.max()),
        "toy/neurons_used": int((per_neuron > 0).sum()),
        "toy/features_represented": int((on.sum(dim=1) > 0).sum()),
        "toy/features_on_one_neuron": int((on.sum(dim=1) == 1).sum()),
        "toy/weights_in_band": int(on.sum()),
        # weights neither ~0 nor ~1 in magnitude: a code that has not settled
        "toy/weights_between": int(((magnitude > 0.1) & (magnitude < band[0])).sum()
                                   + (magnitude > band[1]).sum()),
        "toy/frac_weights_below_0.01": float((magnitude < 0.01).double().mean()),
        "toy/max_abs_weight": float(magnitude.max()),
        "toy/mean_abs_weight": float(magnitude.double().mean()),
        "toy/weight_l1": float(magnitude.double().sum()),
    }


def as_sequential(W: Tensor) -> nn.Sequential:
    """The tied model as ``Linear(n, m) -> Linear(m, n) -> ReLU``, no biases, W's dtype."""
    n, m = W.shape
    encode = nn.Linear(n, m, bias=False, dtype=W.dtype)
    decode = nn.Linear(m, n, bias=False, dtype=W.dtype)
    with torch.no_grad():
        encode.weight.copy_(W.T)
        decode.weight.copy_(W)
    return nn.Sequential(encode, decode, nn.ReLU()).eval()
