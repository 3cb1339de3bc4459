"""Bases, interaction graphs and ablations: the algorithm lives here and nowhere else.

This package imports only torch and numpy (plus tqdm for optional progress bars): it is the library
that users call on their own models. See :func:`build_graph`.
"""

from interbasis.basis.ablation import (
    SCORERS,
    Scorer,
    ablation_schedule,
    edge_ablation,
    node_ablation_curve,
)
from interbasis.basis.bases import METHODS
from interbasis.basis.features import features, features_by_layer
from interbasis.basis.fold import FoldError, SelfFolding, fold_bias, is_folded
from interbasis.basis.graph import build_graph
from interbasis.basis.jacobian import INTEGRATIONS, integration_points
from interbasis.basis.methods import BASES, layer_basis, needs_jacobian
from interbasis.basis.sections import OUTPUT, NodeLayerError
from interbasis.basis.types import (
    EdgeAblationResult,
    Graph,
    NodeAblationCurve,
    NodeLayer,
    load_graph,
)

__all__ = [
    "BASES", "INTEGRATIONS", "METHODS", "OUTPUT", "SCORERS", "EdgeAblationResult", "FoldError",
    "Graph",
    "NodeAblationCurve", "NodeLayer", "NodeLayerError", "Scorer", "SelfFolding",
    "ablation_schedule", "build_graph", "edge_ablation", "features", "features_by_layer",
    "fold_bias", "integration_points", "is_folded", "layer_basis", "load_graph", "needs_jacobian",
    "node_ablation_curve",
]
