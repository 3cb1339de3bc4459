"""The flat metric dict every run stores (docs/method.md §7).

Keys are ``"<metric>/<node layer or transition>"``; these names are the contract between runs,
W&B and the figures::

    rank/gram/<layer>  rank/jacobian/<layer>  rank/basis/<layer>  sparsity/lambda_99/<layer>
    ablation/k_required@<delta>/<layer>
    sparsity/edges_99/<t>  sparsity/edge_gini/<t>  ablation/edges_required@<delta>/<t>
    ablation/edges_required@<delta>/total  ablation/edge_area/<t>  ablation/edge_area/total
    modularity/q

with transitions named by ``transition_name`` (e.g. ``0->2``) and deltas written ``f"{delta:g}"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve
from interbasis.metrics.ablation import k_required
from interbasis.metrics.comparison import edge_area
from interbasis.metrics.degeneracy import rank_basis, rank_gram, rank_jacobian
from interbasis.metrics.modularity import modularity
from interbasis.metrics.sparsity import edge_gini, edges_99, lambda_99, non_constant_edges

DEFAULT_TAU = 1e-15


def summarize(
    graph: Graph,
    node_curves: list[NodeAblationCurve] | None = None,
    edge_results: list[EdgeAblationResult] | None = None,
    deltas: Sequence[float] = (0.001, 0.01, 0.05),
    tau: float | None = None,
) -> dict[str, float | int]:
    """Every section-7 metric that ``graph`` and the given ablation results determine.

    - Per node layer: ranks (``rank/jacobian`` only where M' exists), ``lambda_99``, and
      ``k_required`` for each of ``deltas`` when a curve for that layer is given.
    - Per transition (when the graph has edges): ``edges_99`` and ``edge_gini`` of the
      non-constant edges.
    - From ``edge_results``: ``edges_required@<result.delta>`` per transition, and the total over
      transitions for each delta whose results cover every transition (a partial total would not be
      comparable between runs).
    - ``modularity/q`` when the graph has edges and some delta's results cover every transition;
      eps comes from the smallest such delta (the strictest, the paper's 0.001); NaN when some eps
      is not > 0 (log10(E / eps) is undefined).

    ``tau`` defaults to ``graph.settings["truncation_threshold"]``, else 1e-15. Values are plain
    python ints and floats (``modularity/q`` may be NaN, which ``json.dumps`` writes as NaN).
    Raises ValueError for a curve or result naming a layer / transition the graph lacks, or for two
    results for the same transition and delta.
    """
    if tau is None:
        tau = graph.settings.get("truncation_threshold")
        tau = DEFAULT_TAU if tau is None else float(tau)
    metrics: dict[str, float | int] = {}

    curves_by_layer = _curves_by_layer(graph, node_curves or [])
    for layer in graph.layers:
        metrics[f"rank/gram/{layer.name}"] = rank_gram(layer, tau)
        jacobian_rank = rank_jacobian(layer)
        if jacobian_rank is not None:
            metrics[f"rank/jacobian/{layer.name}"] = jacobian_rank
        metrics[f"rank/basis/{layer.name}"] = rank_basis(layer)
        metrics[f"sparsity/lambda_99/{layer.name}"] = lambda_99(layer)
        curve = curves_by_layer.get(layer.name)
        if curve is not None:
            for delta in deltas:
                metrics[f"ablation/k_required@{delta:g}/{layer.name}"] = k_required(curve, delta)

    transitions = graph.transition_names
    if graph.edges is not None:
        if len(graph.edges) != len(transitions):
            raise ValueError(
                f"the graph has {len(graph.edges)} edge matrices for {len(transitions)} transitions"
            )
        for name, E, earlier, later in zip(
            transitions, graph.edges, graph.layers[:-1], graph.layers[1:], strict=True
        ):
            E_nc = non_constant_edges(E, earlier.has_constant, later.has_constant)
            metrics[f"sparsity/edges_99/{name}"] = edges_99(E_nc)
            metrics[f"sparsity/edge_gini/{name}"] = edge_gini(E_nc)

    results_by_delta = _results_by_delta(graph, edge_results or [])
    complete_deltas = []
    for delta, by_transition in results_by_delta.items():
        for name in transitions:
            if name in by_transition:
                metrics[f"ablation/edges_required@{delta:g}/{name}"] = int(
                    by_transition[name].n_required
                )
        if transitions and set(by_transition) == set(transitions):
            complete_deltas.append(delta)
            metrics[f"ablation/edges_required@{delta:g}/total"] = sum(
                int(result.n_required) for result in by_transition.values()
            )

    # the tolerance-free edge metric (metrics/comparison.py: edge_area), where every halving of
    # the edges kept was scored; the total weighs each transition by its possible edges
    areas = {r.transition: (edge_area(r.evaluations, r.base_score, r.higher_is_better),
                            max(r.evaluations, default=0)) for r in edge_results or []
             if r.delta == min(results_by_delta, default=r.delta)}
    for name, (area, _) in areas.items():
        if not math.isnan(area):
            metrics[f"ablation/edge_area/{name}"] = area
    if transitions and set(areas) == set(transitions) and \
            not any(math.isnan(a) for a, _ in areas.values()):
        metrics["ablation/edge_area/total"] = (sum(a * n for a, n in areas.values())
                                               / sum(n for _, n in areas.values()))

    if graph.edges is not None and complete_deltas:
        by_transition = results_by_delta[min(complete_deltas)]
        eps = [float(by_transition[name].eps) for name in transitions]
        # eps = 0 happens when the bisection kept zero-valued edges (or every edge is 0); the
        # log-ratio weights are then undefined, and one odd transition must not end the run.
        valid = all(value > 0 for value in eps)
        metrics["modularity/q"] = modularity(graph, eps).q if valid else math.nan
    return metrics


def _curves_by_layer(
    graph: Graph, curves: list[NodeAblationCurve]
) -> dict[str, NodeAblationCurve]:
    by_layer: dict[str, NodeAblationCurve] = {}
    for curve in curves:
        if curve.layer not in graph.layer_names:
            raise ValueError(
                f"node ablation curve for {curve.layer!r}, but the node layers are "
                f"{graph.layer_names}"
            )
        if curve.layer in by_layer:
            raise ValueError(f"two node ablation curves for {curve.layer!r}")
        by_layer[curve.layer] = curve
    return by_layer


def _results_by_delta(
    graph: Graph, results: list[EdgeAblationResult]
) -> dict[float, dict[str, EdgeAblationResult]]:
    by_delta: dict[float, dict[str, EdgeAblationResult]] = {}
    for result in results:
        if result.transition not in graph.transition_names:
            raise ValueError(
                f"edge ablation result for {result.transition!r}, but the transitions are "
                f"{graph.transition_names}"
            )
        by_transition = by_delta.setdefault(float(result.delta), {})
        if result.transition in by_transition:
            raise ValueError(
                f"two edge ablation results for {result.transition!r} at delta {result.delta:g}"
            )
        by_transition[result.transition] = result
    return by_delta
