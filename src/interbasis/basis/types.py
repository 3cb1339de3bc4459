"""The data that the basis library returns: graphs of node layers and edges, and ablation results.

These are plain containers (float64 CPU tensors plus a little metadata) so that metrics, the results
store and figures can consume them without importing any of the computation.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

GRAPH_FORMAT = "interbasis.graph"
GRAPH_FORMAT_VERSION = 1


@dataclass
class NodeLayer:
    """One node layer: its basis and the statistics it was built from.

    Activations are row vectors: features are ``x @ C`` and the reconstruction is ``f @ C_pinv``.
    Column 0 of ``C`` is the constant direction whenever the layer carries a constant coordinate
    (``has_constant``); ``output`` (the logits) has none and is left unrotated.
    """

    name: str
    C: Tensor  # (d, r)
    C_pinv: Tensor  # (r, d)
    eigenvalues: Tensor  # (r,) Lambda for LIB, D for PCA, second moments for neuron/output
    mean: Tensor  # (d,) mean over samples and positions
    gram_eigenvalues: Tensor  # (d,) eigenvalues of the (centred) Gram, descending, untruncated
    jacobian_eigenvalues: Tensor | None = None  # eigenvalues of M' (None for the last layer)
    n_positions: int = 1
    has_constant: bool = True

    @property
    def width(self) -> int:
        """Original width d of the activation space."""
        return self.C.shape[0]

    @property
    def rank(self) -> int:
        """Number of kept basis directions r."""
        return self.C.shape[1]


@dataclass
class Graph:
    """The interaction graph: node layers in model order and one edge matrix per transition.

    ``edges[l]`` has shape (r_{l+1}, r_l): rows are nodes of the later layer, columns of the earlier
    one; column 0 holds the edges from the constant node.
    """

    layers: list[NodeLayer]
    edges: list[Tensor] | None
    method: str
    settings: dict = field(default_factory=dict)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def transition_names(self) -> list[str]:
        return [transition_name(a.name, b.name) for a, b in zip(self.layers, self.layers[1:])]

    def layer(self, name: str) -> NodeLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no node layer {name!r}; node layers are {self.layer_names}")

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph to ``path`` atomically (a torch file readable with weights_only=True)."""
        payload = {
            "format": GRAPH_FORMAT,
            "version": GRAPH_FORMAT_VERSION,
            "method": self.method,
            "settings": dict(self.settings),
            "layers": [asdict(layer) for layer in self.layers],
            "edges": None if self.edges is None else list(self.edges),
        }
        atomic_torch_save(payload, Path(path))


def transition_name(layer_in: str, layer_out: str) -> str:
    """The key used for a transition in metrics and result files."""
    return f"{layer_in}->{layer_out}"


def load_graph(path: str | os.PathLike) -> Graph:
    """Load a graph written by :meth:`Graph.save`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no graph file at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != GRAPH_FORMAT:
        raise ValueError(f"{path} is not an interbasis graph file")
    if payload["version"] != GRAPH_FORMAT_VERSION:
        raise ValueError(
            f"{path} has graph format version {payload['version']}; "
            f"this interbasis reads version {GRAPH_FORMAT_VERSION}"
        )
    layers = [NodeLayer(**layer) for layer in payload["layers"]]
    return Graph(layers=layers, edges=payload["edges"], method=payload["method"],
                 settings=payload["settings"])


def atomic_torch_save(obj: object, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        umask = os.umask(0)  # mkstemp's 0600 would hide the file from teammates: use the umask
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class NodeAblationCurve:
    """Score of the model with only the first k directions of one node layer kept (docs/method.md
    §6.1)."""

    layer: str
    ks: list[int]
    scores: list[float]
    base_score: float
    higher_is_better: bool = True
    score_name: str = "accuracy"


@dataclass
class EdgeAblationResult:
    """Result of the edge-ablation bisection for one transition (docs/method.md §6.2).

    ``n_required`` counts non-constant edges; ``eps`` is the smallest kept edge value at
    ``n_required`` (used as the per-layer scale of the modularity weights).
    """

    transition: str
    n_required: int
    n_possible: int
    eps: float
    base_score: float
    score_at_required: float
    delta: float
    higher_is_better: bool = True
    evaluations: dict[int, float] = field(default_factory=dict)
