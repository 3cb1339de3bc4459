"""The vision MLP of docs/experiments.md E2: flattened image -> 100 -> 100 -> 10, ReLU, biases.

A plain ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``, so
:func:`interbasis.basis.fold.fold_bias` folds it and the analytic fast path applies to every
section. Module names are the node-layer names: ``"0"`` (pixels), ``"2"`` (first hidden layer,
after its ReLU), ``"4"`` (second hidden layer), and ``"output"`` (the logits).

    >>> model = make_mlp(784, [100, 100], 10, seed=0)
    >>> model(torch.rand(5, 784)).shape
    torch.Size([5, 10])
"""

from __future__ import annotations

import torch
from torch import nn


def make_mlp(d_in: int, hidden: list[int], d_out: int, seed: int) -> nn.Sequential:
    """Linear + ReLU per hidden width, then a Linear to the logits; PyTorch's default init.

    The init draws from a private RNG state seeded by ``seed``, so building a model neither depends
    on nor disturbs the global RNG.
    """
    widths = [d_in, *hidden]
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], d_out))
    return nn.Sequential(*layers)


def node_layer_names(model: nn.Sequential) -> list[str]:
    """The input of every Linear, in order, then ``"output"``: the node layers of E2."""
    names = [name for name, module in model.named_children() if isinstance(module, nn.Linear)]
    return [*names, "output"]
