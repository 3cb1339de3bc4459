"""Modularity of the interaction graph: a Leiden partition and its Newman Q (docs/method.md §7).

Nodes are the non-constant features of every node layer; each non-constant edge E[i, j] of
transition l becomes an undirected edge of weight log10(E[i, j] / eps_l), clipped at 0, where eps_l
is the smallest edge the edge-ablation bisection kept for that transition. Edges at or below eps_l
get weight 0 and are dropped, so the weights say by how many orders of magnitude an edge exceeds
what the model needs. The partition comes from leidenalg, Q from igraph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from interbasis.basis.types import Graph
from interbasis.metrics.sparsity import non_constant_edges


@dataclass
class ModularityResult:
    """Newman modularity ``q`` of the Leiden partition found at ``resolution``.

    ``membership[layer name][j]`` is the cluster of basis column j of that layer, with -1 for the
    constant feature so that indices line up with the basis columns. ``q`` is NaN when the graph has
    no edge of positive weight (modularity is undefined there).
    """

    q: float
    membership: dict[str, list[int]]
    resolution: float

    @property
    def n_communities(self) -> int:
        return len({c for clusters in self.membership.values() for c in clusters if c >= 0})


def modularity(
    graph: Graph, eps: list[float], resolution: float = 1.0, seed: int = 0
) -> ModularityResult:
    """Leiden partition (RBConfigurationVertexPartition) of the graph and its Newman modularity.

    ``eps[l]`` is the smallest edge kept by the edge-ablation bisection of transition l (one per
    transition, in order, > 0; inf drops every edge of that transition). The same ``resolution``
    is used for the partition and for Q; ``seed`` makes the partition deterministic. Leiden runs
    until an iteration no longer improves the partition.
    """
    if graph.edges is None:
        raise ValueError("the graph has no edges; build it with edges to compute modularity")
    n_transitions = len(graph.layers) - 1
    if len(graph.edges) != n_transitions or len(eps) != n_transitions:
        raise ValueError(
            f"need one edge matrix and one eps per transition ({n_transitions}); got "
            f"{len(graph.edges)} edge matrices and {len(eps)} eps"
        )
    for name, value in zip(graph.transition_names, eps, strict=True):
        if not value > 0:  # also rejects NaN
            raise ValueError(f"eps for {name} must be > 0, got {value}")

    # Node ids: layer by layer, the non-constant features in basis order.
    offsets, n_nodes = [], 0
    for layer in graph.layers:
        offsets.append(n_nodes)
        n_nodes += layer.rank - int(layer.has_constant)

    # Empty first entries keep the concatenations valid for a graph without transitions.
    sources, targets = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    weights = [np.empty(0, np.float64)]
    for l, (E, layer_eps) in enumerate(zip(graph.edges, eps, strict=True)):
        earlier, later = graph.layers[l], graph.layers[l + 1]
        if tuple(E.shape) != (later.rank, earlier.rank):
            raise ValueError(
                f"edges of {graph.transition_names[l]} have shape {tuple(E.shape)}, expected "
                f"(r_next, r) = ({later.rank}, {earlier.rank})"
            )
        E_nc = non_constant_edges(E, earlier.has_constant, later.has_constant).detach().to(
            "cpu", torch.float64).numpy()
        # weight > 0 exactly when E > eps; masking first avoids log10(0) warnings.
        rows, cols = np.nonzero(E_nc > layer_eps)
        sources.append(offsets[l] + cols)
        targets.append(offsets[l + 1] + rows)
        weights.append(np.log10(E_nc[rows, cols] / layer_eps))

    # Imported here: igraph loads its plotting backends (matplotlib) and costs ~1.3 s, which every
    # import of the pipeline (interbasis.metrics) would pay, modularity computed or not.
    import igraph
    import leidenalg

    edge_list = np.stack([np.concatenate(sources), np.concatenate(targets)], axis=1)
    ig_graph = igraph.Graph(n=n_nodes, edges=edge_list.astype(np.int64), directed=False)
    edge_weights = np.concatenate(weights).tolist()
    ig_graph.es["weight"] = edge_weights

    partition = leidenalg.find_partition(
        ig_graph,
        leidenalg.RBConfigurationVertexPartition,
        weights="weight",
        resolution_parameter=resolution,
        seed=seed,
        n_iterations=-1,
    )
    node_membership = list(partition.membership)
    if ig_graph.ecount() == 0:
        q = math.nan
    else:
        q = ig_graph.modularity(
            node_membership, weights="weight", resolution=resolution, directed=False
        )

    membership = {}
    for layer, offset in zip(graph.layers, offsets, strict=True):
        n_features = layer.rank - int(layer.has_constant)
        clusters = node_membership[offset:offset + n_features]
        membership[layer.name] = ([-1] if layer.has_constant else []) + clusters
    return ModularityResult(q=float(q), membership=membership, resolution=resolution)
