"""Metrics of docs/method.md §7: pure functions of a graph and its ablation results.

Nothing here computes a basis or runs a model: the pipeline hands in a
:class:`~interbasis.basis.types.Graph` and ablation results, and :func:`summarize` returns the flat
metric dict every run stores. ``relu_sync`` takes the firing matrix of a ReLU layer directly.
"""

from interbasis.metrics.ablation import degradation, k_required
from interbasis.metrics.degeneracy import (
    FiringPatterns,
    rank_basis,
    rank_gram,
    rank_jacobian,
    relu_sync,
)
from interbasis.metrics.modularity import ModularityResult, modularity
from interbasis.metrics.sparsity import (
    count_holding,
    edge_gini,
    edges_99,
    gini,
    lambda_99,
    non_constant_edges,
)
from interbasis.metrics.summary import summarize

__all__ = [
    "FiringPatterns",
    "ModularityResult",
    "count_holding",
    "degradation",
    "edge_gini",
    "edges_99",
    "gini",
    "k_required",
    "lambda_99",
    "modularity",
    "non_constant_edges",
    "rank_basis",
    "rank_gram",
    "rank_jacobian",
    "relu_sync",
    "summarize",
]
