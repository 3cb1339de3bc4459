"""Exact per-sample Jacobians of sections with a closed form: the dense fast path (docs/method.md
§4.4).

Some sections are cheap to differentiate by hand but not "skip + out diag(gate) in" (linearized.py):
attention mixes positions through a softmax. For those a model offers

    section_jacobian(name_in, name_out) -> Callable[[x (n, P_in, d_in), C (d_out, r)], J] | None,
    J[n, t, s, j, i] = d (section(x) C)[n, t, j] / d x[n, s, i]     (n, P_out, P_in, r, d_in)

(the rotation C_next is contracted inside, where it is cheapest), and build_graph turns J into the
same Jacobian rows the generic ``vmap(vjp)`` path yields (:func:`dense_rows`): a few batched
matmuls instead of P_out x r_out backward passes.

:func:`last_query_attention_jacobian` is the modular-addition attention sublayer
(resid_mid = x[:, -1] + sum_h softmax_s(q_h . k_hs * scale) v_hs W_O_h, with q from the last
position only); it is tested equal to autograd at 1e-10 in float64.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor

from interbasis.basis.dense_block import BlockJacobian, block_rows
from interbasis.basis.jacobian import RowChunk
from interbasis.basis.memory import Workspace
from interbasis.basis.sources import random_bits
from interbasis.basis.stats import as_positions


class SectionJacobian(Protocol):
    """A closed-form section Jacobian: ``jacobian(x, C_out, C_in, out)``, rotated on both sides
    (see :func:`last_query_attention_jacobian`)."""

    def __call__(self, x: Tensor, C_out: Tensor, C_in: Tensor | None = None,
                 out: Tensor | None = None) -> Tensor: ...


DenseJacobian = SectionJacobian | BlockJacobian


def last_query_attention_jacobian(W_Q: Tensor, W_K: Tensor, W_V: Tensor, W_O: Tensor,
                                  scale: float) -> DenseJacobian:
    """Rotated J of x (n, P, d) -> x[:, -1:] + attention from the last position.

    Returns ``jacobian(x, C_out, C_in, out) -> (n, 1, P, r_out, r_in)``: d (out C_out)[n, j] / d
    x[n, s] times C_in (d, r_in) (None: the identity, r_in = d), written into ``out`` if given
    (a closed form with P_out > 1 ignores ``out``, whose shape assumes P_out = 1). Per-head
    weights as TransformerLens stores them (folded: no biases): W_Q, W_K (h, d, e),
    W_V (h, d, e_v), W_O (h, e_v, d). With p = softmax(s), s_p = scale q . k_p, u_p = v_p W_O
    and a_p = p_p (u_p - sum_p' p_p' u_p') (the derivative of the output w.r.t. the score s_p):
        d out / d x_s = [s last] I + sum_h p_hs W_V W_O + sum_h a_hs (scale W_K q_h)^T
                        + [s last] sum_h sum_p a_hp (scale W_Q k_hp)^T.
    Both rotations are contracted first, so every product is a small batched matmul.
    """
    W_VO = torch.einsum("hiv,hvo->hio", W_V, W_O)  # (h, d_in, d_out)
    cache: dict[tuple, tuple] = {}

    def rotated_weights(C_out: Tensor, C_in: Tensor | None) -> tuple[Tensor, Tensor]:
        """(sum_h-ready value weights (h, r_out r_in), skip C_in^T-rotated (r_out, r_in))."""
        key = (id(C_out), None if C_in is None else id(C_in), C_out.dtype)
        if key not in cache:
            cache.clear()
            W = W_VO.to(C_out.dtype)
            value = torch.einsum("hio,or->hri", W, C_out)  # (h, r_out, d_in)
            skip = C_out.T
            if C_in is not None:
                value, skip = value @ C_in, skip @ C_in
            cache[key] = (C_out, C_in, value.reshape(W.shape[0], -1), skip)
        return cache[key][2:]

    @torch.no_grad()
    def jacobian(x: Tensor, C_out: Tensor, C_in: Tensor | None = None,
                 out: Tensor | None = None) -> Tensor:
        n, P, _ = x.shape
        h, r = W_VO.shape[0], C_out.shape[1]
        value, skip = rotated_weights(C_out, C_in)
        r_in = skip.shape[1]
        Wq, Wk, Wv, Wo = (w.to(x.dtype) for w in (W_Q, W_K, W_V, W_O))
        q = torch.einsum("nd,hde->nhe", x[:, -1], Wq)
        k = torch.einsum("npd,hde->nphe", x, Wk)
        v = torch.einsum("npd,hde->nphe", x, Wv)
        p = (torch.einsum("nhe,nphe->nph", q, k) * scale).softmax(dim=1)  # (n, P, h)
        u = torch.einsum("nphv,hvo->npho", v, Wo) @ C_out  # (n, P, h, r): values out, rotated
        a = p[..., None] * (u - torch.einsum("nph,nphr->nhr", p, u)[:, None])
        key_grad = scale * torch.einsum("hie,nhe->nhi", Wk, q)  # (n, h, d_in)
        query_grad = scale * torch.einsum("hie,nphe->nphi", Wq, k)  # (n, P, h, d_in)
        if C_in is not None:
            key_grad, query_grad = key_grad @ C_in, query_grad @ C_in
        rows = torch.empty(n, 1, P, r, r_in, dtype=x.dtype, device=x.device) if out is None else out
        torch.matmul(p.reshape(n * P, h), value, out=rows.view(n * P, r * r_in))  # value path
        # key path: rows[n, s] += a[n, s]^T (r, h) @ key_grad[n] (h, r_in)
        rows.view(n, P * r, r_in).baddbmm_(a.transpose(2, 3).reshape(n, P * r, h), key_grad)
        # query path, last position only: sum over keys p and heads
        last = rows[:, 0, -1]
        last.baddbmm_(a.permute(0, 3, 1, 2).reshape(n, r, P * h),
                      query_grad.reshape(n, P * h, r_in))
        last += skip  # the skip connection
        return rows

    return jacobian


def dense_rows(jacobian: DenseJacobian, x: Tensor, C_next: Tensor, alphas: list[float],
               weights: list[float], n_sources: int | None, generator: torch.Generator,
               max_elements: int, C_in: Tensor | None = None,
               workspace: Workspace | None = None, n_probes: int | None = None
               ) -> Iterator[RowChunk]:
    """The Jacobian rows of x -> section(x) C_next from a closed form, as ``jacobian_rows``.

    ``n_probes`` (the sketch of M') applies to block closed forms (basis/dense_block.py); the
    full-Jacobian closed forms below are exact and cheap and ignore it.

    Yields one :class:`RowChunk` per chunk of samples (every row, some samples) whose J is a
    (k, n_chunk, P_in, d_in) view of (n_chunk, P_in, k, d_in) memory (the accumulators use that
    order); integrated over alphas (J first, then the rows), with stochastic sources drawn per
    sample as in the generic path when P_out > 1. With ``C_in`` the rows are already
    multiplied by it (edges: d g / d f = (d g / d x) C_pinv^T, so C_in = C_pinv^T). The rows of
    a chunk live in ``workspace`` buffers: valid (and free to overwrite) until the next chunk.
    """
    if isinstance(jacobian, BlockJacobian):  # rows straight from a hand-written backward pass
        yield from block_rows(jacobian, x, C_next, alphas, weights, n_sources, generator,
                              max_elements, C_in, n_probes)
        return
    workspace = workspace or Workspace()
    x = as_positions(x)
    n, p_in, d_in = x.shape
    signs = None
    r_out = C_next.shape[1]
    if C_in is not None:
        d_in = C_in.shape[1]
    chunk = max(1, max_elements // max(1, 3 * r_out * p_in * max(d_in, x.shape[-1])))
    for start in range(0, n, chunk):
        xc = x[start:start + chunk]
        m = xc.shape[0]
        shape = (m, 1, p_in, r_out, d_in)  # P_out = 1 fast paths write into the workspace
        rows = None
        for alpha, w in zip(alphas, weights):
            buffer = workspace.get("rows" if rows is None else "term", shape, x.dtype, x.device)
            term = jacobian(alpha * xc, C_next, C_in, out=buffer)
            if rows is None:
                rows = term.mul_(w) if w != 1.0 else term
            else:
                rows.add_(term, alpha=w)
        if rows is None:
            raise ValueError("dense_rows needs at least one integration point (alphas)")
        p_out = rows.shape[1]
        samples = slice(start, start + chunk)
        if n_sources is None or p_out == 1:
            rows = rows.permute(0, 2, 1, 3, 4).reshape(m, p_in, p_out * r_out, d_in)
            features = torch.arange(p_out * r_out, device=x.device) % r_out
            yield RowChunk(rows.permute(2, 0, 1, 3), features, 1.0, samples)
            continue
        if signs is None:
            signs = random_bits(generator, 0, (n_sources, n, p_out))
            signs = (2 * signs - 1).to(dtype=x.dtype, device=x.device)
        probed = torch.einsum("knt,ntsri->nskri", signs[:, samples], rows)
        probed = probed.reshape(m, p_in, n_sources * r_out, d_in)
        features = torch.arange(r_out, device=x.device).repeat(n_sources)
        yield RowChunk(probed.permute(2, 0, 1, 3), features, 1.0 / n_sources, samples)
