"""The modular-addition dataset: every pair (a, b) as tokens [a, b, "="], labelled (a + b) mod p.

The split is a fixed random permutation drawn from its own data seed, so every model seed trains on
the same 30% of pairs (docs/experiments.md E1: 3830 train and 8939 test pairs for p = 113).

This is the LIB authors' split too (ApolloResearch/rib, the paper's models): their
``ModularArithmeticDataset`` lists the pairs a-major as (a, b, p), and ``train_test_split``
(rib/utils.py) calls ``torch.utils.data.random_split(dataset, [int(N * frac_train), rest],
generator=torch.Generator().manual_seed(seed))``, whose indices are ``torch.randperm(N, generator)``
cut at the same point as here. tests/test_transformer_lens.py checks it with torch's own
``random_split``, and on their five checkpoints: each is 100% right on our train split, matches its
published test accuracy on our test split, and fits our train pairs better than any other split.

    >>> data = make_modadd_split()  # p = 113, train_fraction 0.3, data_seed 0 (the paper's)
    >>> data.train_tokens.shape, data.test_tokens.shape
    (torch.Size([3830, 3]), torch.Size([8939, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ModAddSplit:
    """Train and test pairs: tokens (N, 3) long and labels (N,) long."""

    train_tokens: Tensor
    train_labels: Tensor
    test_tokens: Tensor
    test_labels: Tensor

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """(tokens, labels) of the split called ``name`` ("train" or "test")."""
        if name == "train":
            return self.train_tokens, self.train_labels
        if name == "test":
            return self.test_tokens, self.test_labels
        raise ValueError(f"unknown split {name!r}; use 'train' or 'test'")


def all_pairs(p: int = 113) -> tuple[Tensor, Tensor]:
    """All p^2 pairs in a-major order: tokens [a, b, p] (N, 3) and labels (a + b) mod p (N,)."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    equals = torch.full_like(a, p)
    return torch.stack([a, b, equals], dim=1), (a + b) % p


def make_modadd_split(p: int = 113, train_fraction: float = 0.3, data_seed: int = 0
                      ) -> ModAddSplit:
    """The fixed train/test split of :func:`all_pairs` mod ``p`` given by ``data_seed`` (it seeds
    the split only, independent of the model seed): the first ``int(train_fraction * p^2)``
    permuted pairs train. The run config's section is ``interbasis.training.modadd``'s
    ``ModAddDataConfig`` (``make_modadd_split(**section.split_settings())``)."""
    tokens, labels = all_pairs(p)
    # A private generator: the split must not depend on (or disturb) the global RNG.
    generator = torch.Generator().manual_seed(data_seed)
    order = torch.randperm(len(tokens), generator=generator)
    n_train = int(train_fraction * len(tokens))
    train, test = order[:n_train], order[n_train:]
    return ModAddSplit(tokens[train], labels[train], tokens[test], labels[test])
