"""Test helpers (not a test module): a tiny float64 GPT with every bias and norm parameter moved
off its init (so folding is exercised), and random token windows for it."""

from __future__ import annotations

import torch

from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig

TINY = TinyGPTConfig(d_vocab=11, n_ctx=6, d_model=8, n_layers=2, n_heads=2, d_mlp=16)
def perturbed_model(seed: int = 0) -> TinyGPT:
    """Float64, with every bias and norm parameter moved off its init so folding is exercised."""
    model = TinyGPT(TINY, seed=seed).double()
    generator = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return model


def tokens(n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, TINY.d_vocab, (n, TINY.n_ctx),
                         generator=torch.Generator().manual_seed(seed))
