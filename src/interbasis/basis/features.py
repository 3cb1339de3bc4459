"""Features of node layers in a graph's basis: ``f = x C`` for the activations x of the folded
model, in float64 (the rotation the graph's edges and ablations use).

    f = features(model, graph, "blocks.0.hook_resid_mid", tokens)   # (N, r) or (N, P, r)
    by_layer = features_by_layer(model, graph, graph.layer_names, tokens)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from interbasis.basis.fold import frozen_folded_copy
from interbasis.basis.sections import capture
from interbasis.basis.types import Graph


@torch.no_grad()
def features_by_layer(model: nn.Module, graph: Graph, layers: Sequence[str], inputs: Tensor,
                      batch_size: int | None = None) -> dict[str, Tensor]:
    """Features of each of ``layers`` (in model order) for every input: name -> (N, r), or
    (N, P, r) for a layer with positions; float64.

    ``batch_size`` None runs all inputs at once; otherwise in batches of that many (the values
    agree to float64 rounding).
    """
    folded = frozen_folded_copy(model, torch.float64)
    bases = {name: graph.layer(name).C.to(torch.float64) for name in layers}
    parts: dict[str, list[Tensor]] = {name: [] for name in layers}
    for batch in (inputs.split(batch_size) if batch_size else [inputs]):
        if batch.is_floating_point():
            batch = batch.to(torch.float64)
        activations = capture(folded, batch, list(layers))
        for name in layers:
            parts[name].append(activations[name].to(torch.float64) @ bases[name])
    return {name: torch.cat(found) for name, found in parts.items()}


def features(model: nn.Module, graph: Graph, layer: str, inputs: Tensor,
             batch_size: int | None = None) -> Tensor:
    """Features of node layer ``layer`` for every input: (N, r), or (N, P, r) with positions."""
    return features_by_layer(model, graph, [layer], inputs, batch_size)[layer]
