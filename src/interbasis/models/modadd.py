"""The one-layer modular-addition transformer of the grokking literature (docs/experiments.md E1).

No LayerNorm; tokens [a, b, "="]; the prediction is read at the last position only. Parameters
follow TransformerLens names and layouts (``W_Q`` is (n_heads, d_model, d_head), activations are row
vectors), and the init is the grokking one: weights ~ randn / sqrt(d_model), ``W_U`` ~ randn /
sqrt(d_vocab), zero biases.

Hook points (``HookPoint`` modules; a forward pre-hook that returns a tensor replaces the stream,
and the replacement is what flows on):

====================================  ===============  =========================================
name                                  input shape      what
====================================  ===============  =========================================
``blocks.0.hook_resid_pre``           (B, n_ctx, d)    token + positional embeddings
``blocks.0.hook_resid_mid``           (B, 1, d)        after attention, last position only
``blocks.0.mlp.hook_pre``             (B, 1, d_mlp)    MLP pre-activations
``blocks.0.mlp.hook_post``            (B, 1, d_mlp)    MLP activations (after ReLU)
``blocks.0.hook_resid_post``          (B, 1, d)        after the MLP; logits = its last row @ W_U
====================================  ===============  =========================================

Only the last position needs attention queries, the MLP and the unembedding, so :meth:`forward`
computes keys and values at every position, the query at the last one, and cuts the residual to the
last position after attention. :meth:`forward_all_positions` is the straightforward model (every
position everywhere), kept as the reference and the speed baseline.

:meth:`ModAddTransformer.fold_bias` returns a folded copy (docs/method.md §2) with d + 1, d_mlp + 1
and
d_head + 1 (values only) wide streams whose last coordinate is the constant 1 at every hook point.

    >>> model = ModAddTransformer(ModAddTransformerConfig(), seed=0)
    >>> model(tokens).shape  # tokens (B, 3) long -> logits (B, 114)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interbasis.basis.dense import DenseJacobian, last_query_attention_jacobian
from interbasis.basis.linearized import LinearizedSection, residual_mlp_section
from interbasis.basis.masked import InputMap


class HookPoint(nn.Identity):
    """A named point of the residual stream (or MLP hidden layer) that hooks can read or replace."""


@dataclass(frozen=True)
class ModAddTransformerConfig:
    """Architecture of the modular-addition transformer (defaults: the paper's model)."""

    d_vocab: int = 114  # p + 1 tokens: 0..p-1 and "=" = p
    n_ctx: int = 3  # tokens a, b, "="
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512


class Embed(nn.Module):
    """Token plus learned positional embedding: tokens (B, P) -> residual (B, P, d)."""

    def __init__(self, d_vocab: int, n_ctx: int, d_resid: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_resid))
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_resid))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.W_E[tokens] + self.W_pos[: tokens.shape[1]]


class Attention(nn.Module):
    """Causal multi-head attention with biases on Q, K, V and O.

    When folded the biases are ``None`` (they live in the constant row of the weights) and the
    values carry one more unit than queries and keys (the constant, whose output weight holds
    b_O / n_heads).
    """

    # registered parameters (None when folded), declared for the type checker
    b_Q: nn.Parameter | None
    b_K: nn.Parameter | None
    b_V: nn.Parameter | None
    b_O: nn.Parameter | None

    def __init__(self, cfg: ModAddTransformerConfig, folded: bool):
        super().__init__()
        extra = int(folded)
        d_resid, h, e = cfg.d_model + extra, cfg.n_heads, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, d_resid, e))
        self.W_K = nn.Parameter(torch.empty(h, d_resid, e))
        self.W_V = nn.Parameter(torch.empty(h, d_resid, e + extra))
        self.W_O = nn.Parameter(torch.empty(h, e + extra, d_resid))
        for name, shape in [("b_Q", (h, e)), ("b_K", (h, e)), ("b_V", (h, e)), ("b_O", (d_resid,))]:
            self.register_parameter(name, None if folded else nn.Parameter(torch.zeros(shape)))
        # The score scale belongs to the unfolded d_head: folding must not change the scores.
        self.scale = 1.0 / math.sqrt(cfg.d_head)

    def forward(self, resid: Tensor, last_only: bool) -> Tensor:
        """resid (B, P, d) -> attention output (B, Q, d) with Q = 1 if ``last_only`` else P."""
        k = _project(resid, self.W_K, self.b_K)  # (B, P, h, e)
        v = _project(resid, self.W_V, self.b_V)  # (B, P, h, e_v)
        if last_only:
            return self._attend_from_last(_project(resid[:, -1:], self.W_Q, self.b_Q), k, v)
        q = _project(resid, self.W_Q, self.b_Q)  # (B, P, h, e)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) * self.scale
        n_ctx = resid.shape[1]
        future = torch.ones(n_ctx, n_ctx, dtype=torch.bool, device=resid.device).triu(1)
        pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        return self._output(torch.einsum("bhqk,bkhe->bqhe", pattern, v))

    def forward_from_tables(self, resid_table: Tensor, tokens: Tensor) -> Tensor:
        """Last-position attention output (B, 1, d) when the stream is a pure embedding lookup.

        ``resid_table`` (n_ctx, d_vocab, d) holds the stream of every (position, token); keys,
        values and the query are projected once per table row and gathered per sample, which is
        ~1.5x faster for training than projecting all B x n_ctx rows.
        """
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        k = _project(resid_table, self.W_K, self.b_K)[positions, tokens]  # (B, P, h, e)
        v = _project(resid_table, self.W_V, self.b_V)[positions, tokens]  # (B, P, h, e_v)
        q = _project(resid_table[-1], self.W_Q, self.b_Q)[tokens[:, -1:]]  # (B, 1, h, e)
        return self._attend_from_last(q, k, v)

    def _attend_from_last(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return self._output(self._mix_from_last(q, k, v))

    def _mix_from_last(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Per-head results (B, 1, h, e_v) for one query (B, 1, h, e) per sample.

        Broadcasting beats a batch of (1 x e) @ (e x P) matmuls, and the last position sees every
        key, so there is no mask.
        """
        scores = (q * k).sum(-1) * self.scale  # (B, P, h)
        return (scores.softmax(dim=1)[..., None] * v).sum(1, keepdim=True)

    def input_map(self) -> InputMap:
        """Folded attention sublayer resid_pre -> resid_mid as an :class:`InputMap`.

        resid_mid = resid_pre[:, -1] + mix(resid_pre @ [W_Q | W_K | W_V]) @ W_O: the stream enters
        only through the skip and the Q/K/V projections, so edge ablations can mask it cheaply.
        """
        h, d_resid, e = self.W_Q.shape
        e_v = self.W_V.shape[2]
        stacked = [w.transpose(0, 1).reshape(d_resid, -1) for w in (self.W_Q, self.W_K, self.W_V)]

        def core(z: Tensor) -> Tensor:  # (B, P, 2 h e + h e_v) -> (B, 1, h e_v)
            q, k, v = z.split([h * e, h * e, h * e_v], dim=-1)
            mixed = self._mix_from_last(q[:, -1:].unflatten(-1, (h, e)),
                                        k.unflatten(-1, (h, e)), v.unflatten(-1, (h, e_v)))
            return mixed.flatten(-2)

        identity = torch.eye(d_resid, dtype=self.W_Q.dtype, device=self.W_Q.device)
        return InputMap(in_weight=torch.cat(stacked, dim=1), core=core,
                        out_weight=self.W_O.flatten(0, 1), skip=identity,
                        skip_positions=slice(-1, None))

    def _output(self, z: Tensor) -> Tensor:
        """Per-head results z (B, Q, h, e_v) -> (B, Q, d); heads are summed inside the matmul."""
        return F.linear(z.flatten(-2), self.W_O.flatten(0, 1).T, self.b_O)


def _project(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (B, P, d) @ per-head weight (h, d, e) (+ bias (h, e)) -> (B, P, h, e), as one matmul."""
    n_heads, d_in, d_out = weight.shape
    stacked = weight.transpose(0, 1).reshape(d_in, n_heads * d_out)
    flat_bias = None if bias is None else bias.flatten()
    return F.linear(x, stacked.T, flat_bias).unflatten(-1, (n_heads, d_out))


class MLP(nn.Module):
    """x -> ReLU(x W_in + b_in) W_out + b_out, with hook points around the ReLU."""

    b_in: nn.Parameter | None  # registered parameters (None when folded)
    b_out: nn.Parameter | None

    def __init__(self, cfg: ModAddTransformerConfig, folded: bool):
        super().__init__()
        extra = int(folded)
        d_resid, d_hidden = cfg.d_model + extra, cfg.d_mlp + extra
        self.W_in = nn.Parameter(torch.empty(d_resid, d_hidden))
        self.W_out = nn.Parameter(torch.empty(d_hidden, d_resid))
        self.register_parameter("b_in", None if folded else nn.Parameter(torch.zeros(d_hidden)))
        self.register_parameter("b_out", None if folded else nn.Parameter(torch.zeros(d_resid)))
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        # F.linear adds the bias inside the matmul (addmm); W is stored (d_in, d_out), hence .T
        pre = self.hook_pre(F.linear(x, self.W_in.T, self.b_in))
        post = self.hook_post(F.relu(pre))
        return F.linear(post, self.W_out.T, self.b_out)


class TransformerBlock(nn.Module):
    """Attention then MLP, each added to the residual stream; no LayerNorm."""

    def __init__(self, cfg: ModAddTransformerConfig, folded: bool):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.attn = Attention(cfg, folded)
        self.hook_resid_mid = HookPoint()
        self.mlp = MLP(cfg, folded)
        self.hook_resid_post = HookPoint()

    def forward(self, resid: Tensor, last_only: bool) -> Tensor:
        resid = self.hook_resid_pre(resid)
        attn_out = self.attn(resid, last_only)
        if last_only:
            resid = resid[:, -1:]
        resid = self.hook_resid_mid(resid + attn_out)
        return self.hook_resid_post(resid + self.mlp(resid))


class Unembed(nn.Module):
    """Residual (..., d) -> logits (..., d_vocab)."""

    b_U: nn.Parameter | None  # a registered parameter (None when folded)

    def __init__(self, cfg: ModAddTransformerConfig, folded: bool):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model + int(folded), cfg.d_vocab))
        self.register_parameter("b_U", None if folded else nn.Parameter(torch.zeros(cfg.d_vocab)))

    def forward(self, resid: Tensor) -> Tensor:
        return F.linear(resid, self.W_U.T, self.b_U)


class ModAddTransformer(nn.Module):
    """The one-layer transformer; ``forward`` returns the logits at the last position only.

    ``seed`` initialises the weights from a private generator (``None``: the global RNG).
    ``bias_folded=True`` builds the empty folded shape; use :meth:`fold_bias` to get a folded model.
    """

    def __init__(self, cfg: ModAddTransformerConfig, *, seed: int | None = None,
                 bias_folded: bool = False):
        super().__init__()
        self.cfg = cfg
        self.is_bias_folded = bias_folded
        self.embed = Embed(cfg.d_vocab, cfg.n_ctx, cfg.d_model + int(bias_folded))
        self.blocks = nn.ModuleList([TransformerBlock(cfg, bias_folded)])
        self.unembed = Unembed(cfg, bias_folded)
        if not bias_folded:
            self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        """Grokking init: W ~ randn / sqrt(d_model), W_U ~ randn / sqrt(d_vocab), biases 0."""
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in self.named_parameters():  # a fixed order: same seed, same weights
                if name.rsplit(".", 1)[-1].startswith("b_"):
                    param.zero_()
                    continue
                fan = self.cfg.d_vocab if name.endswith("W_U") else self.cfg.d_model
                draw = torch.randn(param.shape, generator=generator, dtype=torch.float64)
                param.copy_(draw / math.sqrt(fan))

    @property
    def block(self) -> TransformerBlock:
        """The one transformer block, ``blocks.0``."""
        block = self.blocks[0]
        assert isinstance(block, TransformerBlock)  # nn.ModuleList items are typed nn.Module
        return block

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, n_ctx) long -> logits at the last position (B, d_vocab)."""
        resid = self.blocks[0](self.embed(tokens), last_only=True)  # (B, 1, d)
        return self.unembed(resid[:, -1])

    def forward_fast(self, tokens: Tensor) -> Tensor:
        """The logits of :meth:`forward` (B, d_vocab), faster: for training and evaluation.

        Before attention the stream is a lookup of (position, token), so keys, values and queries
        are computed per vocabulary entry (:meth:`Attention.forward_from_tables`).
        ``blocks.0.hook_resid_pre`` is bypassed (it never sees the per-sample stream); the other
        hook points run as in :meth:`forward`. Use :meth:`forward` to read or patch the embeddings.
        """
        block, n_ctx = self.block, tokens.shape[1]
        resid_table = self.embed.W_E + self.embed.W_pos[:n_ctx, None]  # (n_ctx, d_vocab, d)
        attn_out = block.attn.forward_from_tables(resid_table, tokens)  # (B, 1, d)
        resid = block.hook_resid_mid(resid_table[-1][tokens[:, -1:]] + attn_out)
        resid = block.hook_resid_post(resid + block.mlp(resid))
        return self.unembed(resid[:, -1])

    def forward_all_positions(self, tokens: Tensor) -> Tensor:
        """tokens (B, n_ctx) long -> logits at every position (B, n_ctx, d_vocab).

        The straightforward computation (a reference and speed baseline); its hook points see every
        position, so hooks written for :meth:`forward` may not apply.
        """
        return self.unembed(self.blocks[0](self.embed(tokens), last_only=False))

    def linearize_section(self, name_in: str, name_out: str) -> LinearizedSection | None:
        """Exact fast paths of the folded MLP block (resid_mid -> resid_post) and the unembedding
        (resid_post -> output) for build_graph and the edge ablations."""
        if not self.is_bias_folded:
            return None
        if (name_in, name_out) == ("blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"):
            mlp = self.block.mlp
            return residual_mlp_section(mlp.W_in.T, mlp.W_out.T, F.relu)
        if (name_in, name_out) == ("blocks.0.hook_resid_post", "output"):
            W_U = self.unembed.W_U  # logits = resid_post[:, -1] @ W_U, a linear section
            return LinearizedSection(out_map=W_U.new_zeros(W_U.shape[1], 0),
                                     in_map=W_U.new_zeros(0, W_U.shape[0]),
                                     gate=lambda x, alphas, weights: x.new_zeros(x.shape[0], 0),
                                     skip=W_U.T)
        return None

    def section_jacobian(self, name_in: str, name_out: str) -> DenseJacobian | None:
        """Closed-form Jacobian of the folded attention sublayer (basis/dense.py)."""
        if self.is_bias_folded and (name_in, name_out) == ("blocks.0.hook_resid_pre",
                                                           "blocks.0.hook_resid_mid"):
            attn = self.block.attn
            return last_query_attention_jacobian(attn.W_Q, attn.W_K, attn.W_V, attn.W_O,
                                                 attn.scale)
        return None

    def section_input_map(self, name_in: str, name_out: str) -> InputMap | None:
        """The attention sublayer's input map for fast edge ablations (basis/masked.py)."""
        if self.is_bias_folded and (name_in, name_out) == ("blocks.0.hook_resid_pre",
                                                           "blocks.0.hook_resid_mid"):
            return self.block.attn.input_map()
        return None

    def fold_bias(self) -> ModAddTransformer:
        """A new model with every bias folded into a constant last coordinate (docs/method.md §2).

        Same hook-point names, same outputs; ``self`` is left untouched. Each hook point's input is
        ``[unfolded stream, 1]``.
        """
        if self.is_bias_folded:
            return self
        cfg = self.cfg
        h, e, d, m = cfg.n_heads, cfg.d_head, cfg.d_model, cfg.d_mlp
        ref = self.embed.W_E
        folded = ModAddTransformer(cfg, bias_folded=True).to(dtype=ref.dtype, device=ref.device)
        folded.train(self.training)
        src_attn, dst_attn = self.block.attn, folded.block.attn
        src_mlp, dst_mlp = self.block.mlp, folded.block.mlp
        with torch.no_grad():
            for param in folded.parameters():
                param.zero_()
            folded.embed.W_E[:, :d] = self.embed.W_E  # tokens write 0 into the constant...
            folded.embed.W_pos[:, :d] = self.embed.W_pos
            folded.embed.W_pos[:, d] = 1.0  # ...positions write 1, so the residual carries it
            for name in ("Q", "K", "V"):
                weight = getattr(dst_attn, f"W_{name}")
                weight[:, :d, :e] = getattr(src_attn, f"W_{name}")
                weight[:, d, :e] = getattr(src_attn, f"b_{name}")
            # An extra value unit that is 1 at every position, hence 1 after attention (the
            # pattern rows sum to 1); its output weight is b_O, split evenly over the heads.
            dst_attn.W_V[:, d, e] = 1.0
            dst_attn.W_O[:, :e, :d] = src_attn.W_O
            dst_attn.W_O[:, e, :d] = _unfolded(src_attn.b_O) / h
            # Column d of W_O and W_out stays 0: the skip connection alone carries the constant.
            dst_mlp.W_in[:d, :m] = src_mlp.W_in
            dst_mlp.W_in[d, :m] = _unfolded(src_mlp.b_in)
            dst_mlp.W_in[d, m] = 1.0  # the constant hidden unit: ReLU(1) = 1, gradients flow
            dst_mlp.W_out[:m, :d] = src_mlp.W_out
            dst_mlp.W_out[m, :d] = _unfolded(src_mlp.b_out)
            folded.unembed.W_U[:d] = self.unembed.W_U
            folded.unembed.W_U[d] = _unfolded(self.unembed.b_U)
        return folded


def _unfolded(bias: Tensor | None) -> Tensor:
    """A bias of the unfolded model, which has all of them (only folded parts store None)."""
    assert bias is not None
    return bias
