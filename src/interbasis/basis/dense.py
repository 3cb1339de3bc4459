"""Exact per-sample Jacobians of sections with a closed form: the dense fast path (spec 4.4).

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

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from interbasis.basis.jacobian import RowChunk
from interbasis.basis.stats import as_positions

DenseJacobian = Callable[[Tensor, Tensor], Tensor]


def last_query_attention_jacobian(W_Q: Tensor, W_K: Tensor, W_V: Tensor, W_O: Tensor,
                                  scale: float) -> DenseJacobian:
    """Rotated J of x (n, P, d) -> x[:, -1:] + attention from the last position.

    Returns ``jacobian(x, C) -> (n, 1, P, r, d)``: d (out C)[n, r] / d x[n, s, :]. Per-head
    weights as TransformerLens stores them (folded: no biases): W_Q, W_K (h, d, e),
    W_V (h, d, e_v), W_O (h, e_v, d). With p = softmax(s), s_p = scale q . k_p, u_p = v_p W_O and
    a_p = p_p (u_p - sum_p' p_p' u_p') (the derivative of the output w.r.t. the score s_p):
        d out / d x_s = [s last] I + sum_h p_hs W_V W_O + sum_h a_hs (scale W_K q_h)^T
                        + [s last] sum_h sum_p a_hp (scale W_Q k_hp)^T.
    C is contracted first so every product is a plain (batched) matmul into (n, P, r, d).
    """
    W_VO = torch.einsum("hiv,hvo->hio", W_V, W_O)  # (h, d_in, d_out)
    cache: dict[int, tuple[Tensor, Tensor]] = {}

    def rotated_weights(C: Tensor) -> tuple[Tensor, Tensor]:
        key = id(C)
        if key not in cache:
            cache.clear()
            h, d_in, _ = W_VO.shape
            value = torch.einsum("hio,or->hri", W_VO.to(C.dtype), C).reshape(h, -1)
            cache[key] = (C, value)
        return cache[key]

    def jacobian(x: Tensor, C: Tensor) -> Tensor:
        n, P, d = x.shape
        h, r = W_VO.shape[0], C.shape[1]
        _, value = rotated_weights(C)
        Wq, Wk, Wv, Wo = (w.to(x.dtype) for w in (W_Q, W_K, W_V, W_O))
        q = torch.einsum("nd,hde->nhe", x[:, -1], Wq)
        k = torch.einsum("npd,hde->nphe", x, Wk)
        v = torch.einsum("npd,hde->nphe", x, Wv)
        p = (torch.einsum("nhe,nphe->nph", q, k) * scale).softmax(dim=1)  # (n, P, h)
        u = torch.einsum("nphv,hvo->npho", v, Wo) @ C  # (n, P, h, r): values out, rotated
        a = p[..., None] * (u - torch.einsum("nph,nphr->nhr", p, u)[:, None])
        key_grad = scale * torch.einsum("hie,nhe->nhi", Wk, q)  # (n, h, d_in)
        query_grad = scale * torch.einsum("hie,nphe->nphi", Wq, k)  # (n, P, h, d_in)
        rows = (p.reshape(n * P, h) @ value).reshape(n, P, r, d)  # value path
        # key path: rows[n, s] += a[n, s]^T (r, h) @ key_grad[n] (h, d)
        rows += (a.transpose(2, 3).reshape(n, P * r, h) @ key_grad).reshape(n, P, r, d)
        # query path, last position only: sum over keys p and heads
        rows[:, -1] += a.permute(0, 3, 1, 2).reshape(n, r, P * h) @ query_grad.reshape(n, P * h, d)
        rows[:, -1] += C.T  # the skip connection
        return rows[:, None]

    return jacobian


def dense_rows(jacobian: DenseJacobian, x: Tensor, C_next: Tensor, alphas: list[float],
               weights: list[float], n_sources: int | None, generator: torch.Generator,
               max_elements: int) -> Iterator[RowChunk]:
    """The Jacobian rows of x -> section(x) C_next from a closed form, as ``jacobian_rows``.

    Yields one :class:`RowChunk` per chunk of samples (every row, some samples) whose J is a
    (k, n_chunk, P_in, d_in) view of (n_chunk, P_in, k, d_in) memory (the accumulators use that
    order); integrated over alphas (J first, then the rows), with stochastic sources drawn per
    sample as in the generic path when P_out > 1.
    """
    x = as_positions(x)
    n, p_in, d_in = x.shape
    signs = None
    r_out = C_next.shape[1]
    chunk = max(1, max_elements // max(1, 4 * r_out * p_in * d_in))
    for start in range(0, n, chunk):
        xc = x[start:start + chunk]
        rows = None
        for alpha, w in zip(alphas, weights):
            term = jacobian(alpha * xc, C_next)
            rows = w * term if rows is None else rows.add_(term, alpha=w)
        m, p_out = rows.shape[:2]
        samples = slice(start, start + chunk)
        if n_sources is None or p_out == 1:
            rows = rows.permute(0, 2, 1, 3, 4).reshape(m, p_in, p_out * r_out, d_in)
            features = torch.arange(p_out * r_out, device=x.device) % r_out
            yield RowChunk(rows.permute(2, 0, 1, 3), features, 1.0, samples)
            continue
        if signs is None:
            signs = torch.randint(0, 2, (n_sources, n, p_out), generator=generator)
            signs = (2 * signs - 1).to(dtype=x.dtype, device=x.device)
        probed = torch.einsum("knt,ntsri->nskri", signs[:, samples], rows)
        probed = probed.reshape(m, p_in, n_sources * r_out, d_in)
        features = torch.arange(r_out, device=x.device).repeat(n_sources)
        yield RowChunk(probed.permute(2, 0, 1, 3), features, 1.0 / n_sources, samples)
