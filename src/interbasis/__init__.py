"""interbasis: the Local Interaction Basis (LIB) vs PCA vs neuron bases, as a library and a study.

The stable public API::

    import interbasis
    graph = interbasis.build_graph(model, data, node_layers, method="lib")
    graph.save("graph.pt"); graph = interbasis.load_graph("graph.pt")
    curve = interbasis.node_ablation_curve(model, graph, node_layers[1], (x_test, y_test))
    result = interbasis.edge_ablation(model, graph, 0, (x_test, y_test), delta=0.001)
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interbasis.basis import (
        INTEGRATIONS,
        METHODS,
        OUTPUT,
        EdgeAblationResult,
        FoldError,
        Graph,
        NodeAblationCurve,
        NodeLayer,
        NodeLayerError,
        Scorer,
        SelfFolding,
        build_graph,
        edge_ablation,
        fold_bias,
        load_graph,
        node_ablation_curve,
    )

__version__ = "0.1.0"

__all__ = [
    "INTEGRATIONS", "METHODS", "OUTPUT", "EdgeAblationResult", "FoldError", "Graph",
    "NodeAblationCurve", "NodeLayer", "NodeLayerError", "Scorer", "SelfFolding", "build_graph",
    "edge_ablation", "fold_bias", "load_graph", "node_ablation_curve",
]


def __getattr__(name: str):
    # The API is loaded on first use (PEP 562): `import interbasis.config` or the run's --help
    # must not pay for importing torch.
    if name in __all__:
        return getattr(importlib.import_module("interbasis.basis"), name)
    raise AttributeError(f"module 'interbasis' has no attribute {name!r}")
