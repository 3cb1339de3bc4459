"""A small pre-LayerNorm GPT (docs/experiments.md E3) that the project trains itself on a text
corpus.

Learned token and position embeddings, ``n_layers`` blocks of causal multi-head attention and a GELU
MLP, a final LayerNorm and an untied unembedding; every linear map has a bias. Hook points follow
TransformerLens (a forward pre-hook that returns a tensor replaces the stream):

=================================  ===================  =======================================
name                               input shape          what
=================================  ===================  =======================================
``blocks.{i}.hook_resid_pre``      (B, P, d)            residual stream entering block i
``blocks.{i}.hook_resid_mid``      (B, P, d)            after block i's attention
``blocks.{i}.hook_resid_post``     (B, P, d)            after block i's MLP
``ln_final``                       (B, P, d)            the last residual stream (before the norm)
=================================  ===================  =======================================

Every position is kept (node layers of an LM have P positions) and ``forward`` returns the logits
at every position, (B, P, d_vocab).

:meth:`TinyGPT.fold_bias` returns a copy whose residual stream is d + 1 wide, its last coordinate
the constant 1 (docs/method.md §2). Norms take their statistics over the first d coordinates only
and pass the constant through; every bias becomes the weight of that constant coordinate (the layer
adds ``constant * b``), so the section from one node layer to the next is linear in the constant
with the bias as its weight, as LIB needs, and the outputs are unchanged.

    >>> model = TinyGPT(TinyGPTConfig(d_vocab=80), seed=0)
    >>> model(tokens).shape  # tokens (B, P) long -> logits (B, P, 80)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interbasis.basis.fold import flagged_folded_copy


class HookPoint(nn.Identity):
    """A named point of the residual stream that hooks can read or replace."""


@dataclass(frozen=True)
class TinyGPTConfig:
    """Architecture; the defaults train in a few minutes on one CPU core (character level)."""

    d_vocab: int
    n_ctx: int = 64
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 256
    ln_eps: float = 1e-5


class Folding(nn.Module):
    """Shared by every layer: split the (possibly) folded stream into (features, constant)."""

    folded: bool = False

    def split(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.folded:
            return x, None
        return x[..., :-1], x[..., -1:]

    def join(self, update: Tensor, constant: Tensor | None) -> Tensor:
        """A residual update (..., d) as a stream vector: the constant gets 0 (it stays 1)."""
        if constant is None:
            return update
        return torch.cat([update, torch.zeros_like(constant)], dim=-1)


def _affine(x: Tensor, weight: Tensor, bias: Tensor, constant: Tensor | None) -> Tensor:
    """x @ weight.T + bias, with the bias read as the weight of the constant when folded."""
    if constant is None:
        return F.linear(x, weight, bias)
    return F.linear(x, weight) + constant * bias


class LayerNorm(Folding):
    """LayerNorm over the d stream coordinates; the folded copy leaves the constant out of the
    statistics and passes it through (its shift beta is folded like any other bias)."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        features, constant = self.split(x)
        normed = F.layer_norm(features, features.shape[-1:], None, None, self.eps) * self.weight
        if constant is None:
            return normed + self.bias
        return torch.cat([normed + constant * self.bias, constant], dim=-1)


class Attention(Folding):
    """Causal multi-head attention; Q, K, V as one (3 d, d) linear map, then the output map."""

    def __init__(self, cfg: TinyGPTConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.W_QKV = nn.Parameter(torch.empty(3 * cfg.d_model, cfg.d_model))
        self.b_QKV = nn.Parameter(torch.zeros(3 * cfg.d_model))
        self.W_O = nn.Parameter(torch.empty(cfg.d_model, cfg.d_model))
        self.b_O = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(self, x: Float[Tensor, "batch pos d"]) -> Tensor:
        features, constant = self.split(x)  # x is the normed stream here
        q, k, v = _affine(features, self.W_QKV, self.b_QKV, constant).chunk(3, dim=-1)
        heads = [t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2) for t in (q, k, v)]
        # written out rather than F.scaled_dot_product_attention: its fused CPU backward has no
        # vmap batching rule, and build_graph vmaps vector-Jacobian products through this
        scores = heads[0] @ heads[1].transpose(-1, -2) / math.sqrt(heads[0].shape[-1])
        n_ctx = scores.shape[-1]
        future = torch.ones(n_ctx, n_ctx, dtype=torch.bool, device=x.device).triu(1)
        mixed = scores.masked_fill(future, float("-inf")).softmax(-1) @ heads[2]  # (B, h, P, e)
        return _affine(mixed.transpose(1, 2).flatten(-2), self.W_O, self.b_O, constant)


class MLP(Folding):
    def __init__(self, cfg: TinyGPTConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(self, x: Tensor) -> Tensor:
        features, constant = self.split(x)
        hidden = F.gelu(_affine(features, self.W_in, self.b_in, constant))
        return _affine(hidden, self.W_out, self.b_out, constant)


class Block(Folding):
    """Pre-LN block: resid_mid = resid_pre + attn(ln1(resid_pre)),
    resid_post = resid_mid + mlp(ln2(resid_mid))."""

    def __init__(self, cfg: TinyGPTConfig):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln1 = LayerNorm(cfg.d_model, cfg.ln_eps)
        self.attn = Attention(cfg)
        self.hook_resid_mid = HookPoint()
        self.ln2 = LayerNorm(cfg.d_model, cfg.ln_eps)
        self.mlp = MLP(cfg)
        self.hook_resid_post = HookPoint()

    def forward(self, resid: Tensor) -> Tensor:
        resid = self.hook_resid_pre(resid)
        _, constant = self.split(resid)
        resid = self.hook_resid_mid(resid + self.join(self.attn(self.ln1(resid)), constant))
        return self.hook_resid_post(resid + self.join(self.mlp(self.ln2(resid)), constant))


class TinyGPT(nn.Module):
    """The GPT; ``seed`` initialises the weights from a private generator (GPT-2's init)."""

    def __init__(self, cfg: TinyGPTConfig, *, seed: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.is_bias_folded = False
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg.d_model, cfg.ln_eps)
        self.W_U = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        """Weights ~ N(0, 0.02^2), residual output maps scaled by 1/sqrt(2 n_layers), biases 0,
        norms 1 (GPT-2's recipe)."""
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        scale_out = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        with torch.no_grad():
            for name, param in self.named_parameters():  # a fixed order: same seed, same weights
                leaf = name.rsplit(".", 1)[-1]
                if leaf == "weight":
                    param.fill_(1.0)
                elif leaf.startswith("b_") or leaf == "bias":
                    param.zero_()
                else:
                    std = scale_out if leaf in ("W_O", "W_out") else 0.02
                    param.copy_(torch.randn(param.shape, generator=generator) * std)

    def block(self, index: int) -> Block:
        """Block ``index`` (``blocks.{index}``)."""
        block = self.blocks[index]
        assert isinstance(block, Block)  # nn.ModuleList items are typed nn.Module
        return block

    def forward(self, tokens: Tensor) -> Float[Tensor, "batch pos vocab"]:
        """tokens (B, P) long, P <= n_ctx -> logits at every position."""
        if tokens.shape[1] > self.cfg.n_ctx:
            raise ValueError(f"context {tokens.shape[1]} exceeds the model's n_ctx "
                             f"{self.cfg.n_ctx}")
        resid = self.W_E[tokens] + self.W_pos[: tokens.shape[1]]
        if self.is_bias_folded:
            resid = torch.cat([resid, resid.new_ones(*resid.shape[:-1], 1)], dim=-1)
        for block in self.blocks:
            resid = block(resid)
        normed = self.ln_final(resid)
        if self.is_bias_folded:
            return F.linear(normed[..., :-1], self.W_U) + normed[..., -1:] * self.b_U
        return F.linear(normed, self.W_U, self.b_U)

    def section_jacobian(self, name_in: str, name_out: str):
        """Closed-form rows of a folded block or half-block section (models/lm_blocks.py)."""
        from interbasis.models.lm_blocks import tiny_gpt_jacobian

        return tiny_gpt_jacobian(self, name_in, name_out) if self.is_bias_folded else None

    def fold_bias(self) -> TinyGPT:
        """A copy whose node layers carry the constant 1 as their last coordinate (docs/method.md
        §2).

        The parameters are the same tensors' copies; only the forward reads them differently
        (norm statistics over the first d coordinates, biases times the constant). ``self`` is
        left untouched.
        """
        if self.is_bias_folded:
            return self
        return flagged_folded_copy(self, Folding)
