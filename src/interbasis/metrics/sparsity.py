"""Sparsity of a basis and of its interaction graph (docs/method.md §7).

- ``gini``: inequality of non-negative values (0 when all are equal, (n - 1) / n for one non-zero
  among n).
- ``lambda_99``: how many features hold 99% of a layer's summed eigenvalues (Lambda for LIB, D for
  PCA, second moments for the neuron basis and the logits).
- ``non_constant_edges``, ``edges_99``, ``edge_gini``: the same questions for the edges of one
  transition, with the edges touching the constant node left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from interbasis.basis.types import NodeLayer

# Relative slack when comparing a cumulative sum with ``fraction * total``: without it, 99 equal
# values out of 100 can miss 0.99 of the total by one rounding error and count 100.
_CUMSUM_RTOL = 1e-12


def as_float64(values: Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """Flatten any tensor, array or sequence into a 1-D float64 numpy array (on the CPU)."""
    if isinstance(values, Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _check_non_negative(values: np.ndarray, what: str) -> None:
    if np.isnan(values).any():
        raise ValueError(f"{what} contain NaN")
    if (values < 0).any():
        raise ValueError(f"{what} must be non-negative (smallest is {values.min():g})")


def gini(values: Tensor | np.ndarray | Sequence[float]) -> float:
    """Gini coefficient of non-negative values (any shape; flattened).

    G = sum_i (2 i - n - 1) x_(i) / (n sum_i x_i) with x_(1) <= ... <= x_(n), i.e. the mean absolute
    difference over all ordered pairs divided by twice the mean. 0 when all values are equal,
    (n - 1) / n when exactly one of n values is non-zero. Empty input and all-zero input give 0.0
    (there is no inequality to measure). Raises ValueError on negative or NaN values.
    """
    x = np.sort(as_float64(values))
    _check_non_negative(x, "gini values")
    n = x.size
    total = x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2 * ranks - n - 1) * x) / (n * total))


def count_holding(values: Tensor | np.ndarray | Sequence[float], fraction: float = 0.99) -> int:
    """Smallest n such that the n largest values sum to at least ``fraction`` of all values.

    Values must be non-negative. All-zero or empty input gives 0 (nothing is needed to hold a zero
    total). The comparison has a relative slack of 1e-12 of the total, so values that small are
    never needed, not even with ``fraction = 1``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    x = as_float64(values)
    _check_non_negative(x, "values")
    if x.size == 0:
        return 0
    cumulative = np.cumsum(np.sort(x)[::-1])
    # The cumulative sum's last entry, not x.sum(): both sides then carry the same rounding.
    total = cumulative[-1]
    if total == 0:
        return 0
    target = fraction * total * (1 - _CUMSUM_RTOL)
    return min(int(np.searchsorted(cumulative, target, side="left")) + 1, x.size)


def lambda_99(layer: NodeLayer, fraction: float = 0.99) -> int:
    """Number of non-constant features, largest first, holding ``fraction`` of summed eigenvalues.

    The eigenvalues are ``layer.eigenvalues`` (Lambda for LIB, D for PCA, second moments for the
    neuron basis / logits) without entry 0 when the layer has a constant feature: the constant
    carries no information about sparsity. Features are ranked by eigenvalue whatever the basis
    order. Absolute values are taken (spec 9: tiny negative eigenvalues occur). All-zero
    eigenvalues, or no non-constant feature, give 0.
    """
    eigenvalues = as_float64(layer.eigenvalues)
    if layer.has_constant:
        eigenvalues = eigenvalues[1:]
    return count_holding(np.abs(eigenvalues), fraction)


def non_constant_edges(
    E: Tensor, from_constant: bool, to_constant: bool
) -> Tensor:  # (r_next - to_constant, r - from_constant)
    """The block of an edge matrix E (r_next, r) that sparsity metrics count.

    Column 0 is dropped when the earlier layer has a constant feature (edges from the constant node
    are huge and always kept), row 0 when the later layer has one (edges into the constant node are
    structurally zero). Returns a view of E.
    """
    if E.ndim != 2:
        raise ValueError(f"an edge matrix must be 2-D (r_next, r), got shape {tuple(E.shape)}")
    return E[int(to_constant):, int(from_constant):]


def edges_99(E_nc: Tensor, fraction: float = 0.99) -> int:
    """Number of non-constant edges, largest first, holding ``fraction`` of their total weight.

    ``E_nc`` is the output of :func:`non_constant_edges`. All-zero or empty edges give 0.
    """
    return count_holding(E_nc, fraction)


def edge_gini(E_nc: Tensor) -> float:
    """Gini coefficient of the non-constant edges (all entries of ``E_nc``, zeros included)."""
    return gini(E_nc)
