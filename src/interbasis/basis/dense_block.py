"""Closed-form Jacobian rows of a transformer block section (docs/method.md §4.4): pre-norm
attention and MLP, sequential (GPT-2, Llama, the tiny GPT) or parallel (GPT-NeoX).

A model offers ``section_jacobian(name_in, name_out)`` returning a :class:`BlockJacobian`; the
build then asks it for rows directly (:func:`block_rows`): for cotangents sigma (k, n, P_out)
over output positions (one-hot for exact sources, random +-1 for stochastic ones) and the
output basis C (d_out, r), the rows sum_t sigma_t (y_t C)[j] / d x_s for every input position
s, written as one hand-written backward pass whose batch axis holds the k r rows
(basis/dense_ops.py). That is the same arithmetic as r backward passes through autograd, but as
a few large matmuls with the output rotation contracted into the MLP's output map first.

Node layers are folded (the constant 1 as the last coordinate, docs/method.md §2); ``constant``
says how the block reads it: ``"ignored"`` (the layers see the hidden states only and the output
constant is a fresh 1; biases are fixed offsets) or ``"biases"`` (every bias is the constant's
weight and the constant passes through: the tiny GPT, and transformers models through
models/hf_lm.py, whose folded copy makes each bias b enter as c * b).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from interbasis.basis.dense_ops import MLP, Attention, Norm
from interbasis.basis.jacobian import RowChunk
from interbasis.basis.memory import retain_freed_memory
from interbasis.basis.sources import random_bits
from interbasis.basis.stats import as_positions

CONSTANT_MODES = ("ignored", "biases")


@dataclass
class BlockJacobian:
    """x -> x + attn(attn_norm(x)) + mlp(mlp_norm(...)) on folded (n, P, d + 1) streams.

    Either part may be None (a half-block section, e.g. resid_pre -> resid_mid). ``parallel``:
    both parts read x (GPT-NeoX); else the MLP reads x + attn(...).
    """

    attn_norm: Norm | None
    attn: Attention | None
    mlp_norm: Norm | None
    mlp: MLP | None
    parallel: bool = False
    constant: str = "ignored"

    def __post_init__(self):
        if self.constant not in CONSTANT_MODES:
            raise ValueError(f"constant must be one of {CONSTANT_MODES}, got {self.constant!r}")
        if (self.attn is None) != (self.attn_norm is None):
            raise ValueError("BlockJacobian: attn and attn_norm must be given together")
        if (self.mlp is None) != (self.mlp_norm is None):
            raise ValueError("BlockJacobian: mlp and mlp_norm must be given together")

    def forward(self, x: Tensor) -> tuple[Tensor, dict]:
        """The section's output (n, P, d + 1) and the values its pullback needs."""
        hidden = x[..., :-1]
        constant = x[..., -1:] if self.constant == "biases" else 1.0
        cache: dict = {}
        out = hidden
        if self.attn is not None and self.attn_norm is not None:
            z, cache["attn_norm"] = self.attn_norm.forward(hidden, constant)
            update, cache["attn"] = self.attn.forward(z, constant)
            out = out + update
        if self.mlp is not None and self.mlp_norm is not None:
            z, cache["mlp_norm"] = self.mlp_norm.forward(hidden if self.parallel else out,
                                                       constant)
            update, cache["mlp"] = self.mlp.forward(z, constant)
            out = out + update
        last = x[..., -1:] if self.constant == "biases" else torch.ones_like(x[..., -1:])
        return torch.cat([out, last], dim=-1), cache

    def rows(self, x: Tensor, C_out: Tensor, signs: Tensor | None, C_in: Tensor | None = None,
             probes: Tensor | None = None) -> Tensor:
        """Rows (m, P_in, k r, d_in): row (p, j) at input position s is
        d (sum_t signs[p, :, t] (section(x) C_out)[:, t, j]) / d x[:, s] (times C_in).

        With ``probes`` (k, m, P_out, r) instead of signs: k rows, row p the derivative of
        sum_{t, j} probes[p, :, t, j] (section(x) C_out)[:, t, j] (the sketch of M')."""
        with torch.no_grad():
            return self._rows(x, C_out, signs, C_in, probes)

    def _rows(self, x: Tensor, C_out: Tensor, signs: Tensor | None, C_in: Tensor | None,
              probes: Tensor | None) -> Tensor:
        m, P, _ = x.shape
        _, cache = self.forward(x)
        C_hidden, C_constant = C_out[:-1], C_out[-1]
        biases = self.constant == "biases"
        # g_c: the constant's row, kept (not None) only when biases are the constant's weights
        g_c: Tensor | None
        if probes is None:
            if signs is None:
                raise ValueError("BlockJacobian.rows needs signs or probes")
            K = signs.shape[0] * C_out.shape[1]
            position_signs = signs.permute(1, 2, 0).contiguous()[..., None]  # (m, P, k, 1)
            # cotangent at the output: (m, P, k r, d)
            g_y = (position_signs[..., None] * C_hidden.T).reshape(m, P, K, -1)
            # the constant's own row (it passes through)
            g_c = (position_signs * C_constant).reshape(m, P, K).clone() if biases else None
        else:
            K = probes.shape[0]
            rotated = probes.permute(1, 2, 0, 3)  # (m, P, k, r)
            g_y = rotated @ C_hidden.T
            g_c = rotated @ C_constant if biases else None
        g_mid = g_y
        mlp, mlp_norm = self.mlp, self.mlp_norm
        if mlp is not None and mlp_norm is not None:
            if probes is None:
                # the output rotation goes into W_out first: (r, m_mlp), not a K-row matmul
                g_z, g_bias = mlp.pullback_rotated(C_hidden.T @ mlp.W_out.T, position_signs,
                                                   cache["mlp"], biases)
            else:
                g_z, g_bias = mlp.pullback_hidden(rotated @ (C_hidden.T @ mlp.W_out.T),
                                                  cache["mlp"], biases)
            if g_c is not None:
                if mlp.b_out is not None:
                    g_c += g_y @ mlp.b_out
                if g_bias is not None:
                    g_c += g_bias
                if mlp_norm.bias is not None:
                    g_c += g_z @ mlp_norm.bias
            g_x = mlp_norm.pullback(g_z, cache["mlp_norm"]).add_(g_y)
            if not self.parallel:
                g_mid = g_x  # the attention's output is the MLP's input too
        else:
            g_x = g_y.clone()
        attn, attn_norm = self.attn, self.attn_norm
        if attn is not None and attn_norm is not None:
            if g_c is not None and attn.b_O is not None:
                g_c += g_mid @ attn.b_O
            g_z, g_bias = attn.pullback(g_mid, cache["attn"], biases)
            if g_c is not None:
                if g_bias is not None:
                    g_c += g_bias
                if attn_norm.bias is not None:
                    g_c += g_z @ attn_norm.bias
            g_norm = attn_norm.pullback(g_z, cache["attn_norm"])
            g_x.add_(g_norm)
        column = g_c[..., None] if g_c is not None else g_x.new_zeros(m, P, K, 1)
        rows = torch.cat([g_x, column], dim=-1)
        return rows if C_in is None else rows @ C_in

    def row_elements(self, P: int, r: int, d: int) -> int:
        """Numbers held per sample and per probe while its rows are computed (for chunking)."""
        m_mlp = 0 if self.mlp is None else self.mlp.W_in.shape[1]
        heads = 0 if self.attn is None else self.attn.n_heads
        return P * r * (3 * m_mlp + 8 * d + 3 * heads * P)


def block_rows(jacobian: BlockJacobian, x: Tensor, C_next: Tensor, alphas: list[float],
               weights: list[float], n_sources: int | None, generator: torch.Generator,
               max_elements: int, C_in: Tensor | None = None,
               n_probes: int | None = None) -> Iterator[RowChunk]:
    """The Jacobian rows of x -> block(x) C_next, as ``dense.dense_rows`` yields them.

    Exact sources: one probe per output position (rows ordered (t, j)); stochastic ones: the
    same +-1 draws as the generic path (rows ordered (probe, j), weight 1/R). ``n_probes`` K:
    the sketch of M' (K random +-1 probes over all (t, j), as jacobian.probe_chunks). Chunks
    cover some samples, some probes and (for wide models) some output features; J is a
    (rows, m, P, d_in) view of (m, P, rows, d_in) memory.
    """
    retain_freed_memory()
    x = as_positions(x)
    n, P, d = x.shape
    r = C_next.shape[1]
    if n_probes is not None:
        total, weight, rows_per_probe = n_probes, 1.0 / n_probes, 1
        draws = random_bits(generator, 0, (n_probes, n, P, r))
        draws = (2 * draws - 1).to(dtype=x.dtype, device=x.device)
    elif n_sources is None or P == 1:  # one output position: sources are exact (as generic)
        total, weight, rows_per_probe, n_sources = P, 1.0, r, None
    else:
        total, weight, rows_per_probe = n_sources, 1.0 / n_sources, r
        draws = random_bits(generator, 0, (n_sources, n, P))
        draws = (2 * draws - 1).to(dtype=x.dtype, device=x.device)
    # chunks of output features when one probe of one sample is over the budget (wide models)
    feature_chunk = rows_per_probe
    while feature_chunk > 1 and jacobian.row_elements(P, feature_chunk, d) > max_elements:
        feature_chunk = (feature_chunk + 1) // 2
    per_probe = jacobian.row_elements(P, feature_chunk, d)
    probe_chunk = max(1, min(total, max_elements // max(1, per_probe)))
    sample_chunk = max(1, min(n, max_elements // max(1, per_probe * probe_chunk)))
    for start in range(0, n, sample_chunk):
        samples = slice(start, start + sample_chunk)
        xs = x[samples]
        m = xs.shape[0]
        for first, columns in ((f, c) for f in range(0, total, probe_chunk)
                               for c in range(0, rows_per_probe, feature_chunk)):
            wanted = slice(columns, columns + feature_chunk)
            C_part = C_next if n_probes is not None else C_next[:, wanted]
            probes = range(first, min(total, first + probe_chunk))
            signs, sketch = None, None
            if n_probes is not None:
                sketch = draws[first:probes.stop, samples]
                features = torch.zeros(len(probes), dtype=torch.long, device=x.device)
            else:
                if n_sources is None:  # one-hot position patterns
                    signs = torch.zeros(len(probes), m, P, dtype=x.dtype, device=x.device)
                    signs[torch.arange(len(probes)), :, torch.tensor(list(probes))] = 1.0
                else:
                    signs = draws[first:probes.stop, samples]
                features = torch.arange(r, device=x.device)[wanted].repeat(len(probes))
            rows = None
            for alpha, w in zip(alphas, weights):
                term = jacobian.rows(alpha * xs, C_part, signs, C_in, probes=sketch)
                rows = term.mul_(w) if rows is None else rows.add_(term, alpha=w)
            if rows is None:
                raise ValueError("block_rows needs at least one integration point (alphas)")
            yield RowChunk(rows.permute(2, 0, 1, 3), features, weight, samples)
