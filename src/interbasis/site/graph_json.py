"""A stored interaction graph as plain JSON that other tools can read (``docs/graph_schema.md``).

One file per run: nodes (every basis feature of every node layer, with its importance, label and
Leiden cluster) and edges (the largest edges of each transition that together hold
``EDGE_WEIGHT_SHARE`` of its total weight, at most ``MAX_EDGES_PER_TRANSITION``). Edge direction
follows the model: ``source`` is a feature of the earlier layer, ``target`` one of the later layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from interbasis.site.labels import FeatureLabels

SCHEMA_NAME = "interbasis.site.graph"
SCHEMA_VERSION = 1
EDGE_WEIGHT_SHARE = 0.99
MAX_EDGES_PER_TRANSITION = 5000


def node_id(layer: str, feature: int) -> str:
    return f"{layer}:{feature}"


def selected_edges(E: np.ndarray, share: float = EDGE_WEIGHT_SHARE,
                   cap: int = MAX_EDGES_PER_TRANSITION) -> list[tuple[int, int, float]]:
    """(row, column, weight) of the largest entries holding ``share`` of the total, heaviest first.

    Zero (and negative, which a valid edge matrix never holds) entries are never selected.
    """
    flat = np.clip(E.ravel(), 0.0, None)
    total = float(flat.sum())
    if total <= 0:
        return []
    order = np.argsort(-flat, kind="stable")
    cumulative = np.cumsum(flat[order])
    count = int(np.searchsorted(cumulative, share * total * (1 - 1e-12)) + 1)
    count = min(count, cap, int((flat > 0).sum()))
    rows, columns = np.unravel_index(order[:count], E.shape)
    return [(int(r), int(c), float(flat[k])) for r, c, k in zip(rows, columns, order[:count])]


def graph_record(graph, labels: FeatureLabels, *, experiment: str, run: str,
                 family: str | None, eps: dict[str, float] | None = None) -> dict[str, Any]:
    """The JSON-ready record of ``graph`` (a stored ``Graph``) in the documented schema."""
    eps = eps or {}
    nodes = []
    layers = []
    for index, layer in enumerate(graph.layers):
        importance = layer.eigenvalues.double().numpy()
        layers.append({"name": layer.name, "index": index, "rank": int(layer.rank),
                       "width": int(layer.width), "has_constant": bool(layer.has_constant)})
        for feature in range(layer.rank):
            nodes.append({
                "id": node_id(layer.name, feature), "layer": layer.name, "feature": feature,
                "importance": _finite(importance[feature]),
                "constant": bool(layer.has_constant and feature == 0),
                "label": labels.label(layer.name, feature),
                "cluster": labels.cluster(layer.name, feature)})
    transitions: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for (source, target), name, E in zip(zip(graph.layers, graph.layers[1:]),
                                         graph.transition_names, graph.edges or []):
        matrix = E.double().numpy()
        kept = selected_edges(matrix)
        total = float(np.clip(matrix, 0, None).sum())
        transitions.append({
            "name": name, "source_layer": source.name, "target_layer": target.name,
            "n_possible": int(matrix.size), "n_exported": len(kept),
            "weight_share_exported": (sum(w for _, _, w in kept) / total) if total > 0 else 0.0,
            "eps": _finite(eps[name]) if name in eps else None})
        edges.extend({"source": node_id(source.name, column), "target": node_id(target.name, row),
                      "transition": name, "weight": weight} for row, column, weight in kept)
    return {
        "schema": SCHEMA_NAME, "version": SCHEMA_VERSION,
        "experiment": experiment, "run": run, "method": graph.method, "family": family,
        "cluster_resolution": labels.cluster_resolution, "label_source": labels.source,
        "label_notes": list(labels.notes),
        "edge_selection": {"weight_share": EDGE_WEIGHT_SHARE,
                           "max_edges_per_transition": MAX_EDGES_PER_TRANSITION},
        "layers": layers, "transitions": transitions, "nodes": nodes, "edges": edges,
    }


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
