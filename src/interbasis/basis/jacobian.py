"""Jacobians of a section, vectorised over samples, and the two sums built from them.

For a batch of n samples, one forward pass and ``vmap`` over vector-Jacobian products give the
Jacobian of every (output position t, output feature i) w.r.t. the section input for all samples at
once: samples are independent, so the batch's vjp with a one-hot cotangent is the per-sample row.
From these rows we accumulate
- the Jacobian Gram M' = sum J^T J / (N P_in) (docs/method.md §4.3 step 6), with one plain matmul,
and
- the squared edges E[i, j] = sum_n sum_t (sum_s f[n,s,j] dg[n,t,i]/df[n,s,j])^2 / (N P_in)
  (docs/method.md §5).
Stochastic sources replace the sum over output positions by R random +-1 probes (unbiased).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, cast

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interbasis.basis.memory import Workspace, retain_freed_memory
from interbasis.basis.sources import SampleSigns, random_bits
from interbasis.basis.stats import as_positions

INTEGRATIONS = ("gradient", "trapezoidal", "gauss-legendre")
# Default Jacobian chunk: at most this many numbers (~256 MB in float64); build_graph passes its
# memory budget instead (basis/memory.py).
MAX_CHUNK_ELEMENTS = 2**25


class RowChunk(NamedTuple):
    """A chunk of Jacobian rows: J (k, n_chunk, P_in, d_in) for the samples ``samples`` of the
    batch, the output feature of each of the k rows, and the weight of every row."""

    J: Tensor
    features: Tensor
    weight: float
    samples: slice = slice(None)


def integration_points(integration: str, n_intervals: int = 0) -> tuple[list[float], list[float]]:
    """Scales alpha and weights of the integrated gradient (docs/method.md §4.3 step 6).

    ``gradient``: the plain gradient at the data point. ``trapezoidal``: n + 1 equally spaced points
    from eps to 1 - eps (eps = 1e-3 / (n + 1)) with weights 1/n inside and 1/(2n) at both ends;
    n = 0 is the single point 0.5. ``gauss-legendre``: the n + 1 Legendre nodes mapped to [0, 1].
    """
    if integration not in INTEGRATIONS:
        raise ValueError(f"unknown integration {integration!r}; choose one of {INTEGRATIONS}")
    if not isinstance(n_intervals, int) or n_intervals < 0:
        raise ValueError(f"n_intervals must be an integer >= 0, got {n_intervals!r}")
    if integration == "gradient":
        return [1.0], [1.0]
    if integration == "trapezoidal":
        if n_intervals == 0:
            return [0.5], [1.0]
        eps = 1e-3 / (n_intervals + 1)
        alphas = np.linspace(eps, 1 - eps, n_intervals + 1)
        weights = np.full(n_intervals + 1, 1.0 / n_intervals)
        weights[[0, -1]] = 0.5 / n_intervals
        return alphas.tolist(), weights.tolist()
    nodes, weights = np.polynomial.legendre.leggauss(n_intervals + 1)
    return ((nodes + 1) / 2).tolist(), (weights / 2).tolist()


def cotangent_chunks(n: int, n_out_positions: int, r_out: int, n_sources: int | None,
                     chunk: int, generator: torch.Generator | SampleSigns, dtype: torch.dtype,
                     device: torch.device) -> Iterator[tuple[Tensor, Tensor, float]]:
    """Yield (cotangents (k, n, P_out, r_out), output feature of each row (k,), weight).

    Exact: one row per (t, i). Stochastic: one row per (probe, i), its position pattern a random
    +-1 vector per sample, weighted 1/R so that the sum over probes estimates the sum over t.
    """
    if n_sources is None or n_out_positions == 1:
        # one-hot rows as a broadcast view: no (k, n, P_out, r_out) tensor is materialised
        one_hot = torch.eye(n_out_positions * r_out, dtype=dtype, device=device)
        feature_of_row = torch.arange(n_out_positions * r_out, device=device) % r_out
        for start in range(0, n_out_positions * r_out, chunk):
            block = one_hot[start:start + chunk].reshape(-1, 1, n_out_positions, r_out)
            yield (block.expand(-1, n, -1, -1), feature_of_row[start:start + chunk], 1.0)
        return
    signs = random_bits(generator, 0, (n_sources, n, n_out_positions))
    signs = (2 * signs - 1).to(dtype=dtype, device=device)
    features = torch.eye(r_out, dtype=dtype, device=device)
    rows = [(probe, i) for probe in range(n_sources) for i in range(r_out)]
    for start in range(0, len(rows), chunk):
        probes = torch.tensor([probe for probe, _ in rows[start:start + chunk]], device=device)
        outputs = torch.tensor([i for _, i in rows[start:start + chunk]], device=device)
        cot = signs[probes][..., None] * features[outputs][:, None, None, :]
        yield cot, outputs, 1.0 / n_sources


def probe_chunks(n: int, n_out_positions: int, r_out: int, n_probes: int, chunk: int,
                 generator: torch.Generator | SampleSigns, dtype: torch.dtype, device: torch.device
                 ) -> Iterator[tuple[Tensor, Tensor, float]]:
    """Sketched M': K random +-1 probes over all (t, i) outputs per sample, weight 1/K.

    E[v v^T] = I for Rademacher v, so sum_k (v_k J)^T (v_k J) / K is unbiased for J^T J. A probe
    mixes output features, so its rows serve M' only (their feature index is meaningless).
    """
    for start in range(0, n_probes, chunk):
        k = min(chunk, n_probes - start)
        signs = random_bits(generator, start, (k, n, n_out_positions, r_out))
        yield ((2 * signs - 1).to(dtype=dtype, device=device),
               torch.zeros(k, dtype=torch.long, device=device), 1.0 / n_probes)


def jacobian_rows(fn: Callable[[Tensor], Tensor], x: Tensor, C_next: Tensor,
                  alphas: list[float], weights: list[float], n_sources: int | None,
                  generator: torch.Generator | SampleSigns, max_elements: int = MAX_CHUNK_ELEMENTS,
                  n_probes: int | None = None) -> Iterator[RowChunk]:
    """Yield chunks of Jacobian rows of x -> fn(x) C_next, integrated over alphas.

    Each chunk holds k rows for every sample of the batch (see :class:`RowChunk`). With
    ``n_probes`` the rows are K random output probes (:func:`probe_chunks`, for M' only).
    """
    retain_freed_memory()  # fresh per-chunk outputs without page faults (basis/memory.py)
    x_shape = x.shape
    x_pos = as_positions(x)
    n, p_in, d_in = x_pos.shape

    def rotated(x_flat: Tensor) -> Tensor:
        return as_positions(fn(x_flat.reshape(x_shape))) @ C_next

    vjps = []
    for alpha in alphas:
        # torch.func.vjp is typed as returning 2 or 3 items; without has_aux it returns 2
        y, vjp_fn = cast(tuple[Tensor, Callable[[Tensor], tuple[Tensor]]],
                         torch.func.vjp(rotated, alpha * x_pos))
        vjps.append(vjp_fn)
    p_out, r_out = y.shape[1], y.shape[2]
    # each row chunk: one vmap output per alpha, their weighted sum and the accumulator's product
    chunk = max(1, max_elements // max(1, n * p_in * d_in * (len(alphas) + 2)))
    if n_probes is not None:
        cotangents = probe_chunks(n, p_out, r_out, n_probes, chunk, generator, x.dtype,
                                  x.device)
    else:
        cotangents = cotangent_chunks(n, p_out, r_out, n_sources, chunk, generator, x.dtype,
                                      x.device)
    for cot, features, weight in cotangents:
        J = weights[0] * torch.func.vmap(vjps[0])(cot)[0]  # summed over alphas, one at a time
        for w, vjp_fn in zip(weights[1:], vjps[1:]):
            J = J + w * torch.func.vmap(vjp_fn)(cot)[0]
        yield RowChunk(J, features, weight)


def row_matrix(J: Tensor) -> Tensor:
    """J (..., d) as a (rows, d) matrix without a copy when its leading axes are permuted.

    M' is a sum over rows, so their order does not matter: the leading axes are put in memory
    order first, so a permuted view (the dense path's) reshapes for free.
    """
    strides = J.stride()
    lead = sorted(range(J.ndim - 1), key=lambda axis: -strides[axis])
    return J.permute(*lead, J.ndim - 1).reshape(-1, J.shape[-1])


class JacobianGram:
    """Accumulates M' = (1/(N P_in)) sum_n sum_s sum_{t,i} J^T J over batches."""

    def __init__(self, d_in: int, dtype: torch.dtype, device: torch.device):
        self.total = torch.zeros(d_in, d_in, dtype=dtype, device=device)
        self.count = 0

    def add_batch(self, rows: Iterator[RowChunk], n: int, p_in: int) -> None:
        for J, _, weight, _ in rows:
            flat = row_matrix(J)
            if flat.dtype == self.total.dtype:
                self.total.addmm_(flat.T, flat, alpha=weight)
            else:  # lower-precision rows: the chunk's product in their dtype, summed in ours
                self.total += weight * (flat.T @ flat)
        self.count += n * p_in

    def result(self) -> Tensor:
        return (self.total / self.count).cpu()


class EdgeSum:
    """Accumulates the squared edges E (r_out, r_in) of one transition over batches."""

    def __init__(self, r_out: int, r_in: int, dtype: torch.dtype, device: torch.device):
        self.total = torch.zeros(r_out, r_in, dtype=dtype, device=device)
        self.count = 0
        self.workspace = Workspace()

    def add_batch(self, rows: Iterator[RowChunk], features: Float[Tensor, "n p_in r_in"],
                  C_pinv: Tensor | None) -> None:
        """Rows are d g / d x (then times C_pinv^T), or already d g / d f when C_pinv is None."""
        n, p_in, _ = features.shape
        for J, out_index, weight, samples in rows:
            # d g / d f = (d g / d x) C_pinv^T; input positions are summed inside the square.
            sample_major = J.permute(1, 2, 0, 3)  # (n, P_in, k, d_in)
            if sample_major.is_contiguous():  # the dense path's memory order
                if C_pinv is not None:
                    sample_major = sample_major @ C_pinv.T
                # the dense path's rows are scratch: scaled in place, summed into a buffer
                sample_major.mul_(features[samples][:, :, None])
                m, _, k, r_in = sample_major.shape
                attributions = self.workspace.get("attributions", (m, k, r_in), J.dtype,
                                                  J.device)
                torch.sum(sample_major, dim=1, out=attributions)
                squares = attributions.square_().sum(0)
            else:
                rows_f = J if C_pinv is None else J @ C_pinv.T
                attributions = (rows_f * features[samples]).sum(2)
                squares = attributions.square().sum(1)
            self.total.index_add_(0, out_index, weight * squares.to(self.total.dtype))
        self.count += n * p_in

    def result(self) -> Tensor:
        return (self.total / self.count).cpu()
