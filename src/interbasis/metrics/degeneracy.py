"""Degeneracy and rank of a node layer (docs/method.md §7).

Three sources of degeneracy make a layer's activations smaller than its width: (1) activations
that span fewer dimensions (``rank_gram``), (2) directions the rest of the network ignores
(``rank_jacobian``), and (3) ReLU neurons that always fire together (``relu_sync``).
``rank_basis`` is what the basis kept after both truncations.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

from interbasis.basis.types import NodeLayer
from interbasis.metrics.sparsity import as_float64


def rank_gram(layer: NodeLayer, tau: float) -> int:
    """Number of Gram eigenvalues strictly above ``tau`` (activation-space dimension, source 1)."""
    return int(np.count_nonzero(as_float64(layer.gram_eigenvalues) > tau))


def rank_jacobian(layer: NodeLayer, rel: float = 1e-12) -> int | None:
    """Number of eigenvalues of M' above ``rel`` times the largest (gradient-space dim., source 2).

    Absolute values are compared (spec 9: tiny negative eigenvalues occur). None for a layer without
    M' (the last node layer); 0 when M' is zero.
    """
    if layer.jacobian_eigenvalues is None:
        return None
    eigenvalues = np.abs(as_float64(layer.jacobian_eigenvalues))
    if eigenvalues.size == 0 or eigenvalues.max() == 0:
        return 0
    return int(np.count_nonzero(eigenvalues > rel * eigenvalues.max()))


def rank_gram_relative(layer: NodeLayer, rel: float) -> int:
    """Gram eigenvalues above ``rel`` times the largest: an effective activation dimension.

    ``rank_gram`` counts against the absolute tau of the basis (1e-15), which float noise in
    activations already clears; a relative cut shows directions that carry almost no variance.
    """
    eigenvalues = np.abs(as_float64(layer.gram_eigenvalues))
    if eigenvalues.size == 0 or eigenvalues.max() == 0:
        return 0
    return int(np.count_nonzero(eigenvalues > rel * eigenvalues.max()))


def rank_basis(layer: NodeLayer) -> int:
    """r: the number of kept basis directions (after both truncations for LIB)."""
    return layer.rank


def relu_sync(firing: Tensor) -> float:  # firing: Bool[Tensor, "N n_neurons"]
    """Distinct firing patterns per neuron over a dataset (degeneracy source 3).

    ``firing[n, i]`` says whether neuron i fired on input n. Neurons that fire on exactly the same
    inputs count once, so the result is (number of distinct columns) / n_neurons, in
    (0, 1]: 1 when every neuron has its own pattern. Dead neurons share the all-False pattern and
    so count once together. With no inputs (N = 0) every column is the same empty pattern.

    Memory stays O(N n_neurons / 8) beyond the input: columns are bit-packed along the sample axis
    and compared as byte strings.
    """
    if firing.ndim != 2:
        raise ValueError(f"firing must be (N, n_neurons), got shape {tuple(firing.shape)}")
    if firing.dtype != torch.bool:
        raise TypeError(
            f"firing must be a bool tensor (e.g. preactivation > 0), got {firing.dtype}"
        )
    n_samples, n_neurons = firing.shape
    if n_neurons == 0:
        raise ValueError("firing has no neurons")
    if n_samples == 0:
        return 1 / n_neurons
    # Pack along samples first (axis 0) so the big (N, n) matrix is never transposed or copied.
    packed = np.packbits(firing.detach().cpu().numpy(), axis=0)  # (ceil(N / 8), n_neurons)
    columns = np.ascontiguousarray(packed.T)  # one byte string per neuron
    as_bytes = columns.view(np.dtype((np.void, columns.shape[1]))).reshape(-1)
    return len(np.unique(as_bytes)) / n_neurons


class FiringPatterns:
    """``relu_sync`` over data seen in batches, in O(n_neurons) memory.

    Each batch's firing columns are bit-packed and fed to one BLAKE2b hash per neuron, so two
    neurons end with the same digest exactly when they fired on the same inputs (a false match
    needs a 128-bit collision). Every neuron sees the same batch boundaries, so the padding
    bits of a batch whose size is not a multiple of 8 are the same for all and change nothing.

        patterns = FiringPatterns()
        for batch in batches:
            patterns.update(preactivation(batch) > 0)   # Bool (B, n_neurons)
        patterns.sync()                                 # == relu_sync(all rows stacked)
    """

    def __init__(self) -> None:
        self._hashes: list | None = None
        self.n_samples = 0

    def update(self, firing: Tensor) -> None:  # firing: Bool[Tensor, "B n_neurons"]
        if firing.ndim != 2 or firing.dtype != torch.bool:
            raise ValueError(f"firing must be a bool (B, n_neurons) tensor, got {firing.dtype} "
                             f"of shape {tuple(firing.shape)}")
        n_neurons = firing.shape[1]
        if self._hashes is None:
            if n_neurons == 0:
                raise ValueError("firing has no neurons")
            self._hashes = [hashlib.blake2b(digest_size=16) for _ in range(n_neurons)]
        elif n_neurons != len(self._hashes):
            raise ValueError(f"a batch with {n_neurons} neurons after batches with "
                             f"{len(self._hashes)}")
        if firing.shape[0] == 0:
            return
        packed = np.packbits(firing.detach().cpu().numpy(), axis=0)
        columns = np.ascontiguousarray(packed.T)
        for digest, column in zip(self._hashes, columns, strict=True):
            digest.update(column.tobytes())
        self.n_samples += firing.shape[0]

    @property
    def n_neurons(self) -> int:
        return 0 if self._hashes is None else len(self._hashes)

    def distinct(self) -> int:
        """Number of distinct firing patterns among the neurons."""
        if self._hashes is None:
            raise ValueError("no batch was given")
        return len({digest.digest() for digest in self._hashes})

    def sync(self) -> float:
        """Distinct patterns / neurons, as :func:`relu_sync` (1 when every neuron differs)."""
        return self.distinct() / self.n_neurons
