"""Degeneracy source 3 on a real model: distinct ReLU firing patterns per neuron
(docs/method.md §7).

Each model family names its ReLU layers as module names whose INPUT is a ReLU's output (or
``"output"`` when the model ends in a ReLU); a neuron fires on an input when that activation is
> 0, which is the same as its pre-activation being > 0. The data is streamed in batches into
:class:`~interbasis.metrics.degeneracy.FiringPatterns`, so memory is one batch of activations plus
one hash per neuron, whatever the dataset size. Every position of a sequence model counts as an
input of its own (the firing matrix is (samples x positions, neurons)).

    relu_sync_by_layer(model, train_tokens, ["blocks.0.mlp.hook_post"])
    # {"degeneracy/relu_sync/blocks.0.mlp.hook_post": 0.98}

:func:`measures_over_training` puts these and the basis ranks of every training snapshot in one
table (modular addition with ``train.snapshot_every``: do they fall when the network groks?).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch import Tensor, nn

from interbasis.basis import build_graph
from interbasis.basis.sections import capture
from interbasis.metrics.degeneracy import FiringPatterns, rank_gram_relative, rank_jacobian
from interbasis.metrics.summary import summarize

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


OVER_TRAINING = "degeneracy_over_training"  # the table's name in the store and on W&B
TRACKED = ("rank/gram/", "rank/jacobian/", "rank/basis/", "sparsity/edges_99/",
           "sparsity/lambda_99/")
# Relative cut for the effective ranks (rank/gram_rel, rank/jacobian_rel) over training: the
# spec's ranks (tau 1e-15 absolute, 1e-12 relative) count float noise as directions.
EFFECTIVE_REL = 1e-6


def measures_over_training(snapshots: list[tuple[int, nn.Module]], basis_inputs: Tensor,
                           node_layers: list[str], relu_layers: list[str],
                           scores: Callable[[nn.Module], dict[str, float]] | None = None,
                           **build_settings) -> pd.DataFrame:
    """One row per (step, model): the three degeneracy measures and the basis ranks.

    Columns: ``step``, whatever ``scores(model)`` returns (e.g. train and test accuracy), the
    per-layer ``rank/gram``, ``rank/jacobian``, ``rank/basis``, ``sparsity/lambda_99`` and
    per-transition ``sparsity/edges_99`` of the graph built on ``basis_inputs`` with
    ``build_settings`` (as ``build_graph``'s keywords), and ``degeneracy/relu_sync/<layer>``;
    also ``rank/gram_rel`` and ``rank/jacobian_rel``: eigenvalues above EFFECTIVE_REL x the
    largest.
    Names are the run-summary keys, so a row reads like the summary of a run at that step.
    M' is computed for every method here (``jacobian_gram=True``): rank/jacobian is tracked.
    """
    tau = build_settings.get("truncation_threshold")
    build_settings.setdefault("jacobian_gram", True)
    rows = []
    for step, model in snapshots:
        graph = build_graph(model, basis_inputs, list(node_layers), progress=False,
                            **build_settings)
        metrics = summarize(graph, tau=tau)
        row: dict[str, float | int] = {"step": int(step)}
        row.update(scores(model) if scores is not None else {})
        row.update({key: value for key, value in metrics.items() if key.startswith(TRACKED)})
        for layer in graph.layers:
            row[f"rank/gram_rel/{layer.name}"] = rank_gram_relative(layer, EFFECTIVE_REL)
            jacobian = rank_jacobian(layer, rel=EFFECTIVE_REL)
            if jacobian is not None:
                row[f"rank/jacobian_rel/{layer.name}"] = jacobian
        row.update(relu_sync_by_layer(model, basis_inputs, relu_layers,
                                      batch_size=build_settings.get("batch_size", 4096)))
        rows.append(row)
    return pd.DataFrame(rows)
