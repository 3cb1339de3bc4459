"""Exact fast path for sections whose Jacobian is "skip + out_map diag(gate) in_map"
(docs/method.md §4.4).

MLP sections (Linear then an elementwise activation) and residual MLP blocks have per-sample
Jacobians (rows = section outputs, columns = inputs)

    J_n = S + O diag(g_n) I,        g_n = act'(z_n) (integrated over alpha when asked),

so M' needs only sum_n g_n and the co-firing matrix G^T G (one N x d_h matmul), because
sum_n diag(g_n) B diag(g_n) = (G^T G) * B elementwise. Edges need one batched product per chunk
of samples, with no autograd. Position-wise sections treat every (sample, position) as a sample.

A model opts in by implementing ``linearize_section(name_in, name_out) -> LinearizedSection | None``
(``FoldedSequential`` does for its MLP sections); everything else takes the generic autograd path,
against which this path is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from interbasis.basis.memory import Workspace

MAX_CHUNK_ELEMENTS = 2**25
# Smaller chunks for the edge products keep their temporaries in cache.
EDGE_CHUNK_ELEMENTS = 2**22


@dataclass
class LinearizedSection:
    """J_n = skip + out_map diag(gate(x_n)) in_map for inputs x (rows, width d_in).

    ``gate(x, alphas, weights)`` returns sum_a w_a act'(alpha_a z(x)) per row, shape (rows, d_h),
    where z is the pre-activation; ``skip`` is None when the section has no direct path.
    """

    out_map: Tensor  # (d_out, d_h)
    in_map: Tensor  # (d_h, d_in)
    gate: Callable[[Tensor, list[float], list[float]], Tensor]
    skip: Tensor | None = None  # (d_out, d_in)
    # The activation itself (not only its slope): lets edge ablations run the section's forward
    # from its masked pre-activations (basis/masked.py). None: ablations take the generic path.
    activation: Callable[[Tensor], Tensor] | None = None


def activation_gate(pre_activation: Callable[[Tensor], Tensor],
                    activation: Callable[[Tensor], Tensor]) -> Callable:
    """Gate of an elementwise activation applied to a linear pre-activation z(x).

    z is linear (biases are folded), so z(alpha x) = alpha z(x).
    """

    def gate(x: Tensor, alphas: list[float], weights: list[float]) -> Tensor:
        z = pre_activation(x)
        total = torch.zeros_like(z)
        for alpha, weight in zip(alphas, weights):
            with torch.enable_grad():
                point = (alpha * z).detach().requires_grad_(True)
                (slope,) = torch.autograd.grad(activation(point).sum(), point)
            total += weight * slope
        return total

    return gate


def _rows(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])


class LinearizedJacobianGram:
    """M' of a linearized section, accumulated from sum g and G^T G."""

    def __init__(self, section: LinearizedSection, C_next: Tensor):
        self.section = section
        self.P = C_next.T @ section.out_map  # (r_out, d_h)
        self.S = None if section.skip is None else C_next.T @ section.skip  # (r_out, d_in)
        d_h = section.in_map.shape[0]
        self.gate_sum = torch.zeros(d_h, dtype=C_next.dtype, device=C_next.device)
        self.cofiring = torch.zeros(d_h, d_h, dtype=C_next.dtype, device=C_next.device)
        self.count = 0

    def add_batch(self, x: Tensor, alphas: list[float], weights: list[float]) -> None:
        g = self.section.gate(_rows(x), alphas, weights)
        self.gate_sum += g.sum(0)
        self.cofiring += g.T @ g
        self.count += g.shape[0]

    def result(self) -> Tensor:
        in_map = self.section.in_map
        gram = in_map.T @ (self.cofiring * (self.P.T @ self.P)) @ in_map
        if self.S is not None:
            cross = self.S.T @ (self.P * self.gate_sum) @ in_map
            gram = gram + cross + cross.T + self.count * (self.S.T @ self.S)
        return (gram / self.count).cpu()


class LinearizedEdgeSum:
    """Squared edges of a linearized section, one batched product per chunk of samples."""

    def __init__(self, section: LinearizedSection, C_next: Tensor, C_pinv: Tensor,
                 max_elements: int = EDGE_CHUNK_ELEMENTS, total_dtype: torch.dtype | None = None):
        self.section = section
        self.max_elements = min(max_elements, EDGE_CHUNK_ELEMENTS)
        self.workspace = Workspace()
        self.P = C_next.T @ section.out_map  # (r_out, d_h)
        self.Q = section.in_map @ C_pinv.T  # (d_h, r_in)
        self.S = None if section.skip is None else C_next.T @ section.skip @ C_pinv.T
        # products in the section's dtype, their sum over chunks in total_dtype
        self.total = torch.zeros(self.P.shape[0], self.Q.shape[1],
                                 dtype=total_dtype or C_next.dtype, device=C_next.device)
        self.count = 0

    def add_batch(self, x_rec: Tensor, features: Tensor, alphas: list[float],
                  weights: list[float]) -> None:
        g = self.section.gate(_rows(x_rec), alphas, weights)
        f = _rows(features)
        (r_out, d_h), r_in = self.P.shape, self.Q.shape[1]
        # Scale the smaller factor per sample; f_j scales column j, so it folds into Q.
        chunk = max(1, self.max_elements // (max(r_out, d_h) * max(r_in, d_h)))
        dtype, device = self.P.dtype, self.P.device
        for start in range(0, g.shape[0], chunk):
            g_chunk, f_chunk = g[start:start + chunk], f[start:start + chunk]
            m = g_chunk.shape[0]
            # Buffers reused from chunk to chunk: no fresh allocation (page faults) per chunk.
            attributions = self.workspace.get("attributions", (m, r_out, r_in), dtype, device)
            if r_in <= r_out:
                scaled = self.workspace.get("scaled", (m, d_h, r_in), dtype, device)
                torch.mul(g_chunk[:, :, None], self.Q, out=scaled)
                scaled.mul_(f_chunk[:, None, :])  # (n, d_h, r_in)
                torch.matmul(self.P, scaled, out=attributions)
            else:
                scaled = self.workspace.get("scaled", (m, r_out, d_h), dtype, device)
                torch.mul(self.P, g_chunk[:, None, :], out=scaled)
                torch.matmul(scaled, self.Q, out=attributions)
                attributions.mul_(f_chunk[:, None, :])
            if self.S is not None:
                attributions.addcmul_(self.S, f_chunk[:, None, :])
            self.total += attributions.square_().sum(0)
        self.count += g.shape[0]

    def result(self) -> Tensor:
        return (self.total / self.count).cpu()


def residual_mlp_section(w_in: Tensor, w_out: Tensor,
                         activation: Callable[[Tensor], Tensor]) -> LinearizedSection:
    """y = x + act(x W_in^T) W_out^T with folded (bias-free) nn.Linear-style weights.

    w_in is (d_h, d), w_out is (d, d_h); the skip term is the identity.
    """
    identity = torch.eye(w_in.shape[1], dtype=w_in.dtype, device=w_in.device)
    return LinearizedSection(out_map=w_out, in_map=w_in,
                             gate=activation_gate(lambda x: x @ w_in.T, activation),
                             skip=identity, activation=activation)
