"""Test helpers (not a test module): a tiny float64 modular-addition transformer with non-zero
biases, and every pair of its small modulus as tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from interbasis.data.modadd import all_pairs
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig

P = 7
TINY = ModAddTransformerConfig(d_vocab=P + 1, d_model=16, n_heads=2, d_head=8, d_mlp=32)


def tiny_model(seed: int = 0) -> ModAddTransformer:
    """A float64 tiny model with non-zero biases, so that folding has something to fold."""
    model = ModAddTransformer(TINY, seed=seed).double()
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("b_"):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64))
    return model


def tiny_tokens() -> Tensor:
    return all_pairs(P)[0]
