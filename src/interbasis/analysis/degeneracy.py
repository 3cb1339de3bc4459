"""Degeneracy source 3 on a real model: distinct ReLU firing patterns per neuron (spec section 7).

Each model family names its ReLU layers as module names whose INPUT is a ReLU's output (or
``"output"`` when the model ends in a ReLU); a neuron fires on an input when that activation is
> 0, which is the same as its pre-activation being > 0. The data is streamed in batches into
:class:`~interbasis.metrics.degeneracy.FiringPatterns`, so memory is one batch of activations plus
one hash per neuron, whatever the dataset size. Every position of a sequence model counts as an
input of its own (the firing matrix is (samples x positions, neurons)).

    relu_sync_by_layer(model, train_tokens, ["blocks.0.mlp.hook_post"])
    # {"degeneracy/relu_sync/blocks.0.mlp.hook_post": 0.98}
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from interbasis.basis.sections import capture
from interbasis.metrics.degeneracy import FiringPatterns

RELU_SYNC_KEY = "degeneracy/relu_sync"


@torch.no_grad()
def firing_patterns(model: nn.Module, inputs: Tensor, layers: list[str],
                    batch_size: int = 4096) -> dict[str, FiringPatterns]:
    """The firing patterns of every layer in ``layers`` over ``inputs`` (in model order)."""
    if not layers:
        return {}
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    patterns = {name: FiringPatterns() for name in layers}
    for batch in inputs.split(batch_size):
        seen = capture(model, batch, list(layers))
        for name in layers:
            activation = seen[name]
            patterns[name].update((activation > 0).reshape(-1, activation.shape[-1]))
    return patterns


def relu_sync_by_layer(model: nn.Module, inputs: Tensor, layers: list[str],
                       batch_size: int = 4096) -> dict[str, float]:
    """``{"degeneracy/relu_sync/<layer>": distinct patterns / neurons}`` for each ReLU layer."""
    return {f"{RELU_SYNC_KEY}/{name}": found.sync()
            for name, found in firing_patterns(model, inputs, layers, batch_size).items()}
