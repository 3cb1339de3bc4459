"""Node and edge ablations: how many features and interactions the model needs (docs/method.md §6).

Usage::

    curve = node_ablation_curve(model, graph, "2", (x_test, y_test))
    result = edge_ablation(model, graph, 0, (x_test, y_test), delta=0.001)

Scores are computed by a :class:`Scorer` (accuracy by default, cross-entropy for language models).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interbasis.basis.fold import frozen_folded_copy
from interbasis.basis.masked import masked_next_features, section_input_map
from interbasis.basis.sections import (
    OUTPUT,
    capture,
    model_output,
    pre_hooks,
    run_replacing,
    section,
)
from interbasis.basis.stats import as_positions
from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve

# Rows of one vmapped edge-ablation chunk are capped at this many numbers (~256 MB in float64).
MAX_CHUNK_ELEMENTS = 2**25


@dataclass(frozen=True)
class Scorer:
    """Turns a batch's (outputs, targets) into (summed score, count); the score is their ratio."""

    name: str
    higher_is_better: bool
    batch_score: Callable[[Tensor, Tensor], tuple[float, int]]

    def degradation(self, base: float, score: float) -> float:
        return base - score if self.higher_is_better else score - base


def _accuracy(outputs: Tensor, targets: Tensor) -> tuple[float, int]:
    return (outputs.argmax(-1) == targets).sum().item(), targets.numel()


def _cross_entropy(outputs: Tensor, targets: Tensor) -> tuple[float, int]:
    loss = F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).double(), targets.reshape(-1),
                           reduction="sum")
    return loss.item(), targets.numel()


SCORERS = {
    "accuracy": Scorer("accuracy", True, _accuracy),
    "cross_entropy": Scorer("cross_entropy", False, _cross_entropy),
}


def get_scorer(score: str | Scorer) -> Scorer:
    if isinstance(score, Scorer):
        return score
    if score not in SCORERS:
        raise ValueError(f"unknown score {score!r}; choose one of {list(SCORERS)} or pass a Scorer")
    return SCORERS[score]


def iter_pairs(data: tuple[Tensor, Tensor] | Iterable, batch_size: int = 4096
               ) -> Iterator[tuple[Tensor, Tensor]]:
    """(inputs, targets) batches from a pair of tensors or an iterable of such pairs."""
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        inputs, targets = data
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets differ in length: {inputs.shape[0]} vs "
                             f"{targets.shape[0]}")
        yield from zip(inputs.split(batch_size), targets.split(batch_size))
        return
    for batch in data:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise TypeError("ablation data must be (inputs, targets) tensors or an iterable of "
                            f"(inputs, targets) batches, got a batch of type "
                            f"{type(batch).__name__}")
        yield batch[0], batch[1]


def prepare_model(model: nn.Module, dtype: torch.dtype,
                  device: str | torch.device | None = None) -> nn.Module:
    """The folded copy the graph's bases live in, in eval mode, ``dtype`` and on ``device``."""
    folded = frozen_folded_copy(model, dtype)
    return folded if device is None else folded.to(check_device(device))


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, with one clear error when it asks for CUDA that is absent."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but CUDA is not available here")
    return device


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _cast(inputs: Tensor, dtype: torch.dtype) -> Tensor:
    return inputs.to(dtype) if inputs.is_floating_point() else inputs


@torch.no_grad()
def evaluate(forward: Callable[[Tensor], Tensor], data, scorer: Scorer, dtype: torch.dtype,
             batch_size: int = 4096, device: torch.device | None = None) -> float:
    """The score of ``forward`` (inputs -> outputs) over all batches of ``data`` (moved to
    ``device`` batch by batch when given)."""
    total, count = 0.0, 0
    for inputs, targets in iter_pairs(data, batch_size):
        if device is not None:
            inputs, targets = inputs.to(device), targets.to(device)
        outputs = model_output(forward(_cast(inputs, dtype)))
        batch_total, batch_count = scorer.batch_score(outputs, targets)
        total += batch_total
        count += batch_count
    if count == 0:
        raise ValueError("ablation data is empty")
    return total / count


def ablation_schedule(width: int) -> list[int]:
    """The paper's k values: every k below 10, then points spaced by a factor 1.05, up to width."""
    ks = list(range(min(width, 10) + (width < 10)))
    k = 10.0
    while k < width:
        if round(k) > ks[-1]:
            ks.append(round(k))
        k *= 1.05
    return ks if ks[-1:] == [width] else ks + [width]


def node_ablation_curve(model: nn.Module, graph: Graph, layer: str, data, score="accuracy",
                        ks: list[int] | None = None, dtype: torch.dtype = torch.float64,
                        batch_size: int = 4096, device: str | torch.device | None = None
                        ) -> NodeAblationCurve:
    """Score with the input of ``layer`` replaced by x C[:, :k] C_pinv[:k, :] (docs/method.md §6.1).

    k runs over the original width (paper schedule by default); for k >= r nothing is ablated.
    """
    if layer == OUTPUT:
        raise ValueError("node ablation applies to node layers before the output")
    node = graph.layer(layer)
    scorer = get_scorer(score)
    folded = prepare_model(model, dtype, device)
    device = _device_of(folded)
    C, C_pinv = node.C.to(dtype=dtype, device=device), node.C_pinv.to(dtype=dtype, device=device)

    def forward_keeping(k: int) -> Callable[[Tensor], Tensor]:
        projector = C[:, :k] @ C_pinv[:k, :]

        def forward(inputs: Tensor) -> Tensor:
            with pre_hooks(folded, {layer: lambda x: x @ projector}):
                return folded(inputs)
        return forward

    base = evaluate(folded, data, scorer, dtype, batch_size, device)
    ks = ablation_schedule(node.width) if ks is None else sorted(ks)
    scores = [base if k >= node.rank else evaluate(forward_keeping(k), data, scorer, dtype,
                                                   batch_size, device) for k in ks]
    return NodeAblationCurve(layer=layer, ks=ks, scores=scores, base_score=base,
                             higher_is_better=scorer.higher_is_better, score_name=scorer.name)


def ablatable_edges(edges: Tensor, to_constant: bool) -> Tensor:
    """The edges an edge ablation ranks and cuts: all but the constant input feature's column,
    and the constant output feature's row when the next layer has one (its value is fixed)."""
    return edges[(1 if to_constant else 0):, 1:]


def edge_mask(edges: Tensor, n_keep: int, to_constant: bool) -> Tensor:
    """Keep the n largest non-constant edges (ties kept) plus the whole constant column."""
    block = ablatable_edges(edges, to_constant)
    mask = torch.zeros_like(edges, dtype=torch.bool)
    mask[:, 0] = True
    if n_keep > 0:
        threshold = block.flatten().topk(min(n_keep, block.numel())).values[-1]
        ablatable_edges(mask, to_constant)[:] = block >= threshold  # a view of mask
    return mask


def edge_ablated_forward(folded: nn.Module, graph: Graph, index: int, mask: Tensor,
                         dtype: torch.dtype, fast_paths: bool = True
                         ) -> Callable[[Tensor], Tensor]:
    """Model whose features at layer index+1 are each computed from their kept inputs only.

    Ablated input features are set to 0, which for centred features is mean ablation. Sections
    with an input map (basis/masked.py) are evaluated at a cost proportional to the kept edges;
    others by one vmapped section run per output feature.
    """
    layer_in, layer_out = graph.layers[index], graph.layers[index + 1]
    device = _device_of(folded)
    C, C_pinv = (t.to(dtype=dtype, device=device) for t in (layer_in.C, layer_in.C_pinv))
    C_next, C_next_pinv = (t.to(dtype=dtype, device=device)
                           for t in (layer_out.C, layer_out.C_pinv))
    input_map = section_input_map(folded, layer_in.name, layer_out.name) if fast_paths else None
    mask = mask.to(device)
    mask_values = mask.to(dtype)

    def generic_next_features(inputs: Tensor, x: Tensor, features: Tensor) -> Tensor:
        run_section = section(folded, inputs, layer_in.name, layer_out.name)

        def output_feature(mask_row: Tensor, i: Tensor) -> Tensor:
            x_masked = ((features * mask_row) @ C_pinv).reshape(x.shape)
            rotated = as_positions(run_section(x_masked)) @ C_next
            return rotated.index_select(-1, i.reshape(1)).squeeze(-1)

        n_out = mask.shape[0]
        # one vmapped row holds a few tensors of the section's size, not r_out of them
        widest = max(features.shape[-1], C_pinv.shape[1], C_next.shape[0])
        chunk = max(1, MAX_CHUNK_ELEMENTS // (4 * features.shape[0] * features.shape[1] * widest))
        columns = torch.func.vmap(output_feature, chunk_size=chunk)(
            mask_values, torch.arange(n_out, device=device))
        return columns.movedim(0, -1)  # (n, P_out, r_next)

    def forward(inputs: Tensor) -> Tensor:
        acts = capture(folded, inputs, [layer_in.name, layer_out.name])
        x = acts[layer_in.name]
        features = as_positions(x) @ C
        if input_map is None:
            next_features = generic_next_features(inputs, x, features)
        else:
            next_features = masked_next_features(input_map, features, mask, C_pinv, C_next)
        x_next = (next_features @ C_next_pinv).reshape(acts[layer_out.name].shape)
        return run_replacing(folded, inputs, layer_out.name, x_next)

    return forward


def bisect_smallest(within: Callable[[int], bool], n_total: int, tolerance: int = 1) -> int:
    """Smallest n in [0, n_total] with within(n), assuming within is monotone in n.

    Returns n_total when even n_total fails; the answer is within ``tolerance`` of the true one.
    """
    if tolerance < 1:
        raise ValueError(f"tolerance must be >= 1, got {tolerance}")
    low, high = 0, n_total
    if within(low):
        return low
    if not within(high):
        return high
    while high - low > tolerance:  # invariant: low fails, high passes
        middle = (low + high) // 2
        if within(middle):
            high = middle
        else:
            low = middle
    return high


def halving_schedule(n_total: int) -> list[int]:
    """N, N // 2, N // 4, ..., 1: the counts the bisection of [0, N] probes while it passes."""
    return [n_total >> k for k in range(max(n_total, 0).bit_length())]


def edge_ablation(model: nn.Module, graph: Graph, index: int, data, score="accuracy",
                  delta: float = 0.001, tolerance: int = 1, dtype: torch.dtype = torch.float64,
                  batch_size: int = 1024, fast_paths: bool = True,
                  device: str | torch.device | None = None, curve: bool = False
                  ) -> EdgeAblationResult:
    """Bisect the smallest number of non-constant edges of transition ``index`` (docs/method.md
    §6.2).

    ``fast_paths=False`` forces the generic vmapped evaluation (for testing the fast one).
    ``curve=True`` also scores every count of :func:`halving_schedule` (into ``evaluations``), so
    the stored curve has a point at every factor of 2 of the edges kept, for the area above it
    (metrics/comparison.py); the bisection from 0..N already visits those above its answer.
    """
    if graph.edges is None:
        raise ValueError("the graph has no edges: build it with edges=True")
    if not 0 <= index < len(graph.edges):
        raise IndexError(f"transition index {index} out of range 0..{len(graph.edges) - 1}")
    scorer = get_scorer(score)
    folded = prepare_model(model, dtype, device)
    device = _device_of(folded)
    edges = graph.edges[index]
    layer_in, layer_out = graph.layers[index], graph.layers[index + 1]
    to_constant = layer_out.has_constant
    n_total = ablatable_edges(edges, to_constant).numel()
    base = evaluate(folded, data, scorer, dtype, batch_size, device)
    evaluations: dict[int, float] = {}

    def score_keeping(n: int) -> float:
        if n not in evaluations:
            mask = edge_mask(edges, n, to_constant)
            forward = edge_ablated_forward(folded, graph, index, mask, dtype, fast_paths)
            evaluations[n] = evaluate(forward, data, scorer, dtype, batch_size, device)
        return evaluations[n]

    def within(n: int) -> bool:
        return scorer.degradation(base, score_keeping(n)) <= delta

    high = bisect_smallest(within, n_total, tolerance)
    for n in halving_schedule(n_total) if curve else []:
        score_keeping(n)
    block = ablatable_edges(edges, to_constant).flatten()
    eps = block.topk(high).values[-1].item() if high > 0 else block.max().item()
    n_possible = (layer_in.width - 1) * (layer_out.width - (1 if to_constant else 0))
    return EdgeAblationResult(
        transition=graph.transition_names[index], n_required=high, n_possible=n_possible,
        eps=eps, base_score=base, score_at_required=score_keeping(high), delta=delta,
        higher_is_better=scorer.higher_is_better, evaluations=dict(sorted(evaluations.items())))
