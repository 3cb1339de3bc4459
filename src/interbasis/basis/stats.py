"""Streaming mean and Gram matrix of node-layer activations (docs/method.md §3).

Batches are merged with Chan et al.'s pairwise update, so the centred Gram is accumulated from
centred batches (no catastrophic cancellation from subtracting mu mu^T at the end) and memory is
O(d^2) whatever the number of samples.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from interbasis.basis.distributed import merge_moments


def as_positions(x: Tensor) -> Float[Tensor, "batch pos d"]:
    """View activations as (batch, positions, d): a (batch, d) layer has one position."""
    if x.ndim == 2:
        return x.unsqueeze(1)
    if x.ndim == 3:
        return x
    raise ValueError(f"node-layer activations must have shape (batch, d) or (batch, pos, d); "
                     f"got {tuple(x.shape)}")


class RunningMoments:
    """Mean and centred scatter of row vectors, accumulated batch by batch in float64.

    Accumulated on ``device`` (where the activations are); the results are CPU tensors.
    """

    def __init__(self, dim: int, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        self.dim = dim
        self.count = 0
        self._mean = torch.zeros(dim, dtype=dtype, device=device)
        self._scatter = torch.zeros(dim, dim, dtype=dtype, device=device)

    def update(self, x: Float[Tensor, "... d"]) -> None:
        rows = x.detach().reshape(-1, x.shape[-1]).to(dtype=self._mean.dtype,
                                                      device=self._mean.device)
        if rows.shape[1] != self.dim:
            raise ValueError(f"expected activations of width {self.dim}, got {rows.shape[1]}")
        n = rows.shape[0]
        if n == 0:
            return
        batch_mean = rows.mean(0)
        centred = rows - batch_mean
        batch_scatter = centred.T @ centred
        total = self.count + n
        delta = batch_mean - self._mean
        self._scatter += batch_scatter + torch.outer(delta, delta) * (self.count * n / total)
        self._mean += delta * (n / total)
        self.count = total

    def state(self) -> dict:
        """What a checkpoint stores: count, mean and centred scatter (CPU tensors)."""
        return {"count": self.count, "mean": self._mean.cpu().clone(),
                "scatter": self._scatter.cpu().clone()}

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device = "cpu") -> RunningMoments:
        moments = cls(state["mean"].shape[0], state["mean"].dtype, device)
        moments.count = int(state["count"])
        moments._mean.copy_(state["mean"])
        moments._scatter.copy_(state["scatter"])
        return moments

    def merge_ranks(self, stage: str = "statistics") -> None:
        """Replace the moments by those of every torch.distributed rank's samples together
        (unequal counts weighted by Chan's formula, basis/distributed.py); no-op alone."""
        self.count, mean, scatter = merge_moments(self.count, self._mean, self._scatter,
                                                     stage)
        self._mean.copy_(mean)
        self._scatter.copy_(scatter)

    @property
    def mean(self) -> Float[Tensor, " d"]:
        return self._mean.cpu().clone()

    @property
    def covariance(self) -> Float[Tensor, "d d"]:
        """Population covariance (1/N normalisation, as the Gram of docs/method.md section 3)."""
        self._require_data()
        return (self._scatter / self.count).cpu()

    def gram(self, center: bool) -> Float[Tensor, "d d"]:
        """The Gram matrix of docs/method.md §3.

        Centred: every coordinate but the last (the constant) is centred, and the constant stays 1,
        so the result is blockdiag(covariance of the others, 1). Uncentred: E[x^T x].
        """
        self._require_data()
        if not center:
            return self.covariance + torch.outer(self.mean, self.mean)
        gram = self.covariance.clone()
        gram[-1, :] = 0.0
        gram[:, -1] = 0.0
        gram[-1, -1] = 1.0
        return gram

    def _require_data(self) -> None:
        if self.count == 0:
            raise ValueError("no activations were seen: the data is empty")
