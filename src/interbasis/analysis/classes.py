"""How basis features of a classifier relate to its classes, and how edge weight is spread.

- :func:`class_means`: the mean value of every feature of a node layer per class (long format), the
  data of the paper's class view (one LIB feature of the first hidden layer of the CIFAR-10 MLP
  separates animals from vehicles).
- :func:`group_separation`: per feature, the share of its variance explained by a grouping of the
  classes (the correlation ratio eta^2: 1 when the feature is constant within every group, 0 when
  its group means coincide), for the class groups and for the classes themselves.
- :func:`edge_weight_curve`: the fraction of a transition's non-constant edge weight held by its n
  largest edges, on a log grid of n (the sparsity view of figure 5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from interbasis.basis import Graph, features
from interbasis.metrics.sparsity import non_constant_edges


def layer_features(model: nn.Module, graph: Graph, layer: str, inputs: Tensor,
                   batch_size: int = 4096) -> Tensor:  # (N, r) float64
    """Features ``x @ C`` of node layer ``layer`` for every input (in the graph's basis).

    A layer with positions (a CNN's spatial tokens) gives each image the mean of every feature over
    its positions: the class views ask what a feature does for an image, wherever it fires.
    """
    found = features(model, graph, layer, inputs, batch_size)
    return found.mean(dim=1) if found.ndim == 3 else found


def class_means(features: Tensor, labels: Tensor, layer: str, classes: tuple[str, ...],
                groups: dict[str, tuple[int, ...]]) -> pd.DataFrame:
    """One row per (feature, class): layer, feature, class, class_name, group, mean, count."""
    group_of = {label: group for group, members in groups.items() for label in members}
    rows = []
    for label, name in enumerate(classes):
        members = features[labels == label]
        means = members.mean(0) if len(members) else torch.full((features.shape[1],), np.nan)
        rows.append(pd.DataFrame({
            "layer": layer, "feature": np.arange(features.shape[1]), "class": label,
            "class_name": name, "group": group_of.get(label, ""), "mean": means.numpy(),
            "count": len(members)}))
    return pd.concat(rows, ignore_index=True)


def correlation_ratio(features: Tensor, codes: Tensor) -> Tensor:  # (r,)
    """eta^2 per feature: between-code variance over total variance (NaN for a constant feature)."""
    centred = features - features.mean(0)
    total = (centred**2).sum(0)
    between = torch.zeros_like(total)
    for code in codes.unique():
        members = centred[codes == code]
        between += len(members) * members.mean(0) ** 2
    ratio = between / total
    # a feature that does not vary (the constant direction) separates nothing
    return torch.where(total > 1e-12 * len(features), ratio, torch.nan)


def group_separation(features: Tensor, labels: Tensor, layer: str,
                     groups: dict[str, tuple[int, ...]]) -> pd.DataFrame:
    """One row per feature: layer, feature, eta2_groups, eta2_classes (samples in no group are
    left out of eta2_groups)."""
    group_codes = torch.full_like(labels, -1)
    for code, members in enumerate(groups.values()):
        group_codes[torch.isin(labels, torch.tensor(members))] = code
    grouped = group_codes >= 0
    return pd.DataFrame({
        "layer": layer, "feature": np.arange(features.shape[1]),
        "eta2_groups": correlation_ratio(features[grouped], group_codes[grouped]).numpy(),
        "eta2_classes": correlation_ratio(features, labels).numpy()})


def log_grid(n_total: int, factor: float = 1.1) -> list[int]:
    """1, 2, ... then points spaced by ``factor``, ending at n_total (empty when n_total is 0)."""
    ns: list[int] = []
    n = 1.0
    while n < n_total:
        if not ns or round(n) > ns[-1]:
            ns.append(round(n))
        n *= factor
    return ns + [n_total] if n_total > 0 and ns[-1:] != [n_total] else ns


def edge_weight_curve(graph: Graph) -> pd.DataFrame:
    """Per transition: transition, n_edges, n_possible, fraction of the non-constant edge weight
    held by the n_edges largest edges."""
    if graph.edges is None:
        raise ValueError("the graph has no edges: build it with edges=True")
    frames = []
    for name, E, earlier, later in zip(graph.transition_names, graph.edges, graph.layers[:-1],
                                       graph.layers[1:], strict=True):
        weights = non_constant_edges(E, earlier.has_constant, later.has_constant).flatten()
        ordered = weights.sort(descending=True).values.to(torch.float64)
        cumulative = ordered.cumsum(0)
        total = cumulative[-1].item() if len(cumulative) else 0.0
        ns = log_grid(len(ordered))
        fractions = [cumulative[n - 1].item() / total if total > 0 else np.nan for n in ns]
        frames.append(pd.DataFrame({"transition": name, "n_edges": ns,
                                    "n_possible": len(ordered), "fraction": fractions}))
    return pd.concat(frames, ignore_index=True)


def classifier_analysis(model: nn.Module, graph: Graph, layers: list[str], inputs: Tensor,
                        labels: Tensor, classes: tuple[str, ...],
                        groups: dict[str, tuple[int, ...]], summary_layer: str
                        ) -> dict[str, pd.DataFrame | float | int]:
    """Tables ``class_means``, ``class_separation``, ``edge_weight`` and two summary numbers.

    The numbers describe ``summary_layer`` (the first hidden layer): the largest eta^2 of one
    feature over the class groups, and that feature's index in the basis.
    """
    means, separation = [], []
    for layer in layers:
        features = layer_features(model, graph, layer, inputs)
        means.append(class_means(features, labels, layer, classes, groups))
        separation.append(group_separation(features, labels, layer, groups))
    separation_table = pd.concat(separation, ignore_index=True)
    at_layer = separation_table[separation_table["layer"] == summary_layer].dropna(
        subset=["eta2_groups"])
    best = at_layer.loc[at_layer["eta2_groups"].idxmax()] if len(at_layer) else None
    results: dict[str, pd.DataFrame | float | int] = {
        "class_means": pd.concat(means, ignore_index=True),
        "class_separation": separation_table,
        f"class_separation/best_eta2_groups/{summary_layer}":
            float(best["eta2_groups"]) if best is not None else float("nan"),
        f"class_separation/best_feature/{summary_layer}":
            int(best["feature"]) if best is not None else -1,
    }
    if graph.edges is not None:
        results["edge_weight"] = edge_weight_curve(graph)
    return results
