"""Hand-written batched backward passes of a transformer block's parts (basis/dense_block.py).

Each part has a forward that keeps what its backward needs, and a pullback that takes cotangents
with an extra row axis K, (m, P, K, d_out), to (m, P, K, d_in): K Jacobian rows of every sample
at once, as large matmuls instead of K backward passes through autograd. Weights act on row
vectors (``x @ W``). The parts: LayerNorm and RMSNorm, causal multi-head attention with its
softmax (optionally rotary and grouped key/value heads), and the MLP (GELU, tanh-GELU, SiLU,
optionally gated as in SwiGLU). Each is tested equal to autograd at 1e-10 in float64
(tests/test_dense_block.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

ACTIVATIONS = ("gelu", "gelu_tanh", "silu", "relu")


@dataclass
class Norm:
    """LayerNorm (``kind="layer"``) or RMSNorm (``"rms"``) over the last axis."""

    kind: str
    weight: Tensor
    bias: Tensor | None
    eps: float

    def forward(self, x: Tensor, constant: Tensor | float = 1.0) -> tuple[Tensor, tuple]:
        """(normed, cache); the bias is multiplied by ``constant`` (the folded constant)."""
        if self.kind == "layer":
            centred = x - x.mean(-1, keepdim=True)
            inv = torch.rsqrt(centred.square().mean(-1, keepdim=True) + self.eps)
        elif self.kind == "rms":
            centred = x
            inv = torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps)
        else:
            raise ValueError(f"unknown norm {self.kind!r}")
        xhat = centred * inv
        z = xhat * self.weight
        if self.bias is not None:
            z = z + constant * self.bias
        return z, (xhat, inv)

    def pullback(self, g: Tensor, cache: tuple) -> Tensor:
        """g (m, P, K, d) at the output -> at the input."""
        xhat, inv = (c[:, :, None] for c in cache)
        scaled = g * self.weight
        out = scaled - xhat * (scaled * xhat).mean(-1, keepdim=True)
        if self.kind == "layer":
            out -= scaled.mean(-1, keepdim=True)
        return out.mul_(inv)


def activation(name: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """(act(x), act'(x)) for GELU (erf), tanh-GELU (GPT-2's gelu_new), SiLU and ReLU."""
    if name == "gelu":
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-0.5 * x.square()) / math.sqrt(2 * math.pi)
        return x * cdf, cdf + x * pdf
    if name == "gelu_tanh":
        c = math.sqrt(2 / math.pi)
        t = torch.tanh(c * (x + 0.044715 * x.pow(3)))
        return 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t.square()) * c * (
            1 + 3 * 0.044715 * x.square())
    if name == "silu":
        sig = torch.sigmoid(x)
        return x * sig, sig * (1 + x * (1 - sig))
    if name == "relu":
        return x.clamp(min=0), (x > 0).to(x.dtype)
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


@dataclass
class MLP:
    """act(z W_in + b_in) W_out + b_out, or with ``W_gate``: (act(z W_gate) * (z W_in)) W_out."""

    activation: str
    W_in: Tensor  # (d, m)
    b_in: Tensor | None
    W_out: Tensor  # (m, d)
    b_out: Tensor | None
    W_gate: Tensor | None = None

    def forward(self, z: Tensor, constant: Tensor | float = 1.0) -> tuple[Tensor, tuple]:
        pre = z @ self.W_in
        if self.b_in is not None:
            pre = pre + constant * self.b_in
        if self.W_gate is None:
            hidden, slope = activation(self.activation, pre)
            cache: tuple[Tensor, ...] = (slope,)
        else:
            gate, gate_slope = activation(self.activation, z @ self.W_gate)
            hidden = gate * pre
            cache = (gate, gate_slope * pre)  # d hidden / d pre, d hidden / d (z W_gate)
        out = hidden @ self.W_out
        if self.b_out is not None:
            out = out + constant * self.b_out
        return out, cache

    def pullback_rotated(self, rotated: Tensor, signs: Tensor, cache: tuple,
                         with_constant: bool = True) -> tuple[Tensor, Tensor | None]:
        """:meth:`pullback_hidden` of the cotangents signs[m, t, p] rotated[j] at the hidden units
        (row (p, j); ``rotated`` (r, m_mlp) is the output basis times W_out^T), built in one
        pass with the activation's slope."""
        m, P, k, _ = signs.shape
        r = rotated.shape[0]
        if self.W_gate is None:  # signs times slopes first: (m, P, k, 1, m_mlp) is small
            g_pre = (signs[..., None] * cache[0][:, :, None, None]) * rotated
            g_pre = g_pre.reshape(m, P, k * r, -1)
            share = None if self.b_in is None or not with_constant else g_pre @ self.b_in
            return g_pre @ self.W_in.T, share
        g_hidden = (signs[..., None] * rotated).reshape(m, P, k * r, -1)
        return self.pullback_hidden(g_hidden, cache, with_constant)

    def pullback_hidden(self, g_hidden: Tensor, cache: tuple, with_constant: bool = True
                        ) -> tuple[Tensor, Tensor | None]:
        """Cotangent at the hidden units (m, P, K, m_mlp) -> (at the input z, the constant's
        share through b_in, or None when there is no b_in)."""
        if self.W_gate is None:
            g_pre = g_hidden.mul_(cache[0][:, :, None])
            g_z = g_pre @ self.W_in.T
        else:
            gate, gate_slope = (c[:, :, None] for c in cache)
            g_pre = g_hidden * gate
            g_z = g_pre @ self.W_in.T
            g_z.add_(g_hidden.mul_(gate_slope) @ self.W_gate.T)
        return g_z, None if self.b_in is None or not with_constant else g_pre @ self.b_in


@dataclass
class Attention:
    """Causal multi-head attention: softmax(scale q k^T + causal mask) v W_O + b_O.

    q, k, v = z W_{Q,K,V} + b (heads of size e side by side); ``n_kv_heads`` < ``n_heads``
    shares each key/value head among n_heads / n_kv_heads query heads. ``rotary``: P -> (cos,
    sin) of shape (P, rot), applied to the first rot coordinates of each q and k head with the
    rotate-half convention (Llama, GPT-NeoX).
    """

    W_Q: Tensor  # (d, H e)
    W_K: Tensor  # (d, H_kv e)
    W_V: Tensor  # (d, H_kv e)
    W_O: Tensor  # (H e, d)
    b_Q: Tensor | None
    b_K: Tensor | None
    b_V: Tensor | None
    b_O: Tensor | None
    n_heads: int
    n_kv_heads: int
    scale: float
    rotary: Callable[[int], tuple[Tensor, Tensor]] | None = None

    def _heads(self, t: Tensor, h: int) -> Tensor:
        return t.unflatten(-1, (h, -1)).transpose(1, 2)  # (m, h, P, e)

    @staticmethod
    def _rotate(t: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        """Rotary embedding of (m, h, P, e) heads: x cos + rotate_half(x) sin on the first rot."""
        if rotary is None:
            return t
        cos, sin = rotary
        rot, half = cos.shape[-1], cos.shape[-1] // 2
        part, rest = t[..., :rot], t[..., rot:]
        turned = torch.cat([-part[..., half:], part[..., :half]], dim=-1)
        return torch.cat([part * cos + turned * sin, rest], dim=-1)

    def forward(self, z: Tensor, constant: Tensor | float = 1.0) -> tuple[Tensor, tuple]:
        H, H_kv = self.n_heads, self.n_kv_heads
        q, k, v = (z @ W if b is None else z @ W + constant * b
                   for W, b in ((self.W_Q, self.b_Q), (self.W_K, self.b_K), (self.W_V, self.b_V)))
        P = z.shape[1]
        rotary = None if self.rotary is None else self.rotary(P)
        q = self._rotate(self._heads(q, H), rotary)
        k = self._rotate(self._heads(k, H_kv), rotary).repeat_interleave(H // H_kv, dim=1)
        v = self._heads(v, H_kv).repeat_interleave(H // H_kv, dim=1)
        future = torch.ones(P, P, dtype=torch.bool, device=z.device).triu(1)
        pattern = (q @ k.transpose(-1, -2) * self.scale).masked_fill(future, float("-inf"))
        pattern = pattern.softmax(-1)  # (m, H, t, s)
        mixed = (pattern @ v).transpose(1, 2).flatten(-2)  # (m, P, H e)
        out = mixed @ self.W_O
        if self.b_O is not None:
            out = out + constant * self.b_O
        return out, (q, k, v, pattern, rotary)

    def pullback(self, g_out: Tensor, cache: tuple, with_constant: bool = True
                 ) -> tuple[Tensor, Tensor | None]:
        """g_out (m, P, K, d) at the output -> (at the input z, the constant's share through the
        biases b_Q, b_K, b_V (per position, (m, P, K)), or None without biases)."""
        q, k, v, pattern, rotary = cache
        m, P, K, _ = g_out.shape
        H, H_kv = self.n_heads, self.n_kv_heads
        e = q.shape[-1]
        # per head, query positions and rows side by side: (m, H, P, K, e), made contiguous once
        g_mixed = (g_out @ self.W_O.T).view(m, P, K, H, e).permute(0, 3, 1, 2, 4).contiguous()
        # values: g_v[s] = sum_t A[t, s] g_mixed[t]
        g_v = (pattern.transpose(-1, -2) @ g_mixed.view(m, H, P, K * e)).view(m, H, P, K, e)
        # pattern, then scores through the softmax: g_S = A (g_A - sum_s A g_A)
        g_A = (g_mixed.view(m, H, P * K, e) @ v.transpose(-1, -2)).view(m, H, P, K, P)
        A = pattern[:, :, :, None]
        g_S = g_A.mul_(A)
        g_S.sub_(A * g_S.sum(-1, keepdim=True)).mul_(self.scale)
        g_q = (g_S.view(m, H, P * K, P) @ k).view(m, H, P, K, e)
        # keys: g_k[s] = sum_t g_S[t, s] q[t], as one transposed matmul: (m, H, K, P_s, e)
        g_k = (g_S.view(m, H, P, K * P).transpose(-1, -2) @ q).view(m, H, K, P, e)
        g_k = g_k.transpose(2, 3)
        if H_kv != H:  # grouped heads: sum the cotangents of the query heads sharing a head
            g_k = g_k.view(m, H_kv, H // H_kv, P, K, e).sum(2)
            g_v = g_v.view(m, H_kv, H // H_kv, P, K, e).sum(2)
        if rotary is not None:
            g_q, g_k = (_unrotate(t, rotary) for t in (g_q, g_k))
        # q, k and v cotangents side by side in one buffer, then one matmul back to z
        widths = [t.shape[1] * e for t in (g_q, g_k, g_v)]
        g_qkv = g_out.new_empty(m, P, K, sum(widths))
        for t, start, width in zip((g_q, g_k, g_v), (0, widths[0], widths[0] + widths[1]),
                                   widths):
            g_qkv[..., start:start + width].unflatten(-1, (t.shape[1], e)).copy_(
                t.permute(0, 2, 3, 1, 4))
        g_z = g_qkv @ torch.cat([self.W_Q, self.W_K, self.W_V], dim=1).T
        biases = [b for b in (self.b_Q, self.b_K, self.b_V) if b is not None]
        if not with_constant or not biases:
            return g_z, None
        b = torch.cat([g_q.new_zeros(w) if b is None else b
                       for b, w in zip((self.b_Q, self.b_K, self.b_V), widths)])
        return g_z, g_qkv @ b


def _unrotate(t: Tensor, rotary: tuple[Tensor, Tensor]) -> Tensor:
    """The rotary map's transpose applied to (m, h, P, K, e) cotangents."""
    cos, sin = (c[:, None] for c in rotary)  # (P, 1, rot)
    rot = cos.shape[-1]
    part, rest = t[..., :rot], t[..., rot:]
    return torch.cat([part * cos + _rotate_half_t(part * sin), rest], dim=-1)


def _rotate_half_t(t: Tensor) -> Tensor:
    """Transpose of rotate-half ([-x2, x1]): [y2, -y1]."""
    half = t.shape[-1] // 2
    return torch.cat([t[..., half:], -t[..., :half]], dim=-1)
