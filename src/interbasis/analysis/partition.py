"""The Leiden partition of a run's interaction graph, stored with the run so figures only read.

``summarize`` keeps just Q (``modularity/q``); figure 3 also needs which cluster each feature is in,
at the paper's resolutions (1 for the metric, 0.5 for the main-text graph). The record written as
``modularity.json``::

    {"eps": {"<transition>": eps_l, ...}, "delta": 0.001, "seed": 0,
     "partitions": [{"resolution": 1.0, "q": 0.31, "n_communities": 12,
                     "membership": {"<layer>": [-1, 0, 3, ...], ...}}, ...]}

``membership[layer][j]`` is the cluster of basis column j (-1 for the constant feature). eps_l is
the smallest edge the edge-ablation bisection kept (docs/method.md §7), from the strictest delta
whose
results cover every transition, exactly as ``summarize`` picks it, so the resolution-1 entry's q
equals the summary's ``modularity/q``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interbasis.basis.types import EdgeAblationResult, Graph
from interbasis.metrics.modularity import modularity
from interbasis.metrics.sparsity import non_constant_edges

MODULARITY_RECORD = "modularity"
DEFAULT_RESOLUTIONS = (1.0, 0.5)


def eps_from_results(graph: Graph, edge_results: Sequence[EdgeAblationResult]
                     ) -> tuple[float, list[float]] | None:
    """(delta, eps per transition) from the strictest delta covering every transition, or None."""
    by_delta: dict[float, dict[str, float]] = {}
    for result in edge_results:
        by_delta.setdefault(float(result.delta), {})[result.transition] = float(result.eps)
    complete = [delta for delta, found in by_delta.items()
                if graph.transition_names and set(found) == set(graph.transition_names)]
    if not complete:
        return None
    delta = min(complete)
    return delta, [by_delta[delta][name] for name in graph.transition_names]


def eps_from_required(graph: Graph, n_required: Mapping[str, int]) -> list[float]:
    """eps per transition recomputed from the stored ``edges_required`` counts (for backfills).

    The bisection keeps the ``n`` largest non-constant edges, so eps is the n-th largest of them
    (the largest when n = 0), the same value ``edge_ablation`` records.
    """
    if graph.edges is None:
        raise ValueError("the graph has no edges")
    eps = []
    for name, E, earlier, later in zip(graph.transition_names, graph.edges, graph.layers[:-1],
                                       graph.layers[1:], strict=True):
        if name not in n_required:
            raise KeyError(f"no edges_required count for transition {name}")
        block = non_constant_edges(E, earlier.has_constant, later.has_constant).flatten()
        n = int(n_required[name])
        eps.append(block.topk(n).values[-1].item() if n > 0 else block.max().item())
    return eps


def partition_record(graph: Graph, eps: Sequence[float], delta: float,
                     resolutions: Sequence[float] = DEFAULT_RESOLUTIONS, seed: int = 0) -> dict:
    """The JSON-ready record above: one Leiden partition and its Q per resolution.

    An eps that is not > 0 makes the weights undefined: the record then holds no partitions
    (``summarize`` reports Q as NaN in that case).
    """
    eps_by_transition = dict(zip(graph.transition_names, (float(e) for e in eps), strict=True))
    record: dict[str, Any] = {"eps": eps_by_transition, "delta": float(delta), "seed": seed,
                              "partitions": []}
    if not all(value > 0 for value in eps):
        return record
    for resolution in resolutions:
        result = modularity(graph, list(eps), resolution=float(resolution), seed=seed)
        record["partitions"].append({
            "resolution": float(resolution),
            "q": result.q,  # NaN when no edge has positive weight, as in the summary
            "n_communities": result.n_communities,
            "membership": result.membership,
        })
    return record
