"""Figure 6b: the language model's interaction graph, LIB above PCA (one seed).

The paper draws GPT-2's LIB graph around layer 6; this draws the project's LM stand-in
(``tiny_gpt``): columns are the rotated node layers in model order, each with its top features by
eigenvalue (Lambda for LIB, D for PCA), grouped by the stored Leiden cluster. Edges between drawn
nodes of consecutive layers are drawn when they are above the bisection's eps (needed by the edge
ablation); width and opacity are log10(E / eps), divided by the largest weight drawn in either
panel, so the two panels share one scale. Node labels are the feature index, its share of the
layer's eigenvalue sum and, where the run stores them, the token the feature is largest on
(``top_tokens.csv``, ``python -m interbasis.metrics.top_tokens``) and the share of its variance
that token position explains (``positions.csv``, ``python -m interbasis.metrics.positions``).

Drawn by figure 6's ``make`` (written as ``fig06b_lm_graph.png``); reads ``graph_{lib,pca}.pt`` and
``modularity.json`` (and the two tables, when present) of the first seed with both runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from interbasis.figures import data, style

STEM = "fig06b_lm_graph"
TOP_FEATURES = 12
RESOLUTION = 1.0
# cluster colours that are neither LIB's blue nor PCA's orange
CLUSTER_COLOURS = ("#2a9d8f", "#8c6bb1", "#e9c46a", "#90be6d", "#f28482", "#6d597a", "#b5838d",
                   "#a3a3a3")


def _feature_notes(path: Path) -> dict[tuple[str, int], str]:
    """(layer, feature) -> "'tok' pos 0.12" from the run's top-token and position tables (either
    may be absent: an older run, or one the metrics were not run on)."""
    from interbasis.metrics.positions import POSITIONS_FILE, read_shares
    from interbasis.metrics.top_tokens import TOP_TOKENS_FILE, tokens_by_feature

    notes: dict[tuple[str, int], list[str]] = {}
    if (Path(path) / TOP_TOKENS_FILE).exists():
        for key, top in tokens_by_feature(path, 1).items():
            notes.setdefault(key, []).append(repr(top[0]))
    if (Path(path) / POSITIONS_FILE).exists():
        for key, share in read_shares(path).items():
            notes.setdefault(key, []).append(f"pos {share:.2f}")
    return {key: " ".join(parts) for key, parts in notes.items()}


def _chosen(graph, membership: dict, top: int) -> dict[int, list[int]]:
    """Rotated layer index -> basis columns of the top eigenvalues, ordered by cluster."""
    chosen = {}
    for i, layer in enumerate(graph.layers):
        if not layer.has_constant:
            continue
        values = np.abs(layer.eigenvalues.numpy())
        columns = [int(j) for j in np.argsort(-values, kind="stable") if j != 0][:top]
        rank = {c: n for n, c in enumerate(columns)}
        clusters = membership[layer.name]
        chosen[i] = sorted(columns, key=lambda c: (clusters[c], rank[c]))
    return chosen


def _edges(graph, chosen: dict, eps: dict) -> list[tuple]:
    """(layer, input column, output column, log10(E / eps)) for drawn edges above eps."""
    found = []
    for i in chosen:
        if i + 1 not in chosen:
            continue
        name = graph.transition_names[i]
        E = graph.edges[i].numpy()
        for c_out in chosen[i + 1]:
            for c_in in chosen[i]:
                if E[c_out, c_in] > eps[name]:
                    found.append((i, c_in, c_out, float(np.log10(E[c_out, c_in] / eps[name]))))
    return found


def _panel(ax, graph, part: dict, chosen: dict, edges: list[tuple], top_weight: float,
           names: dict, method: str, notes: dict[tuple[str, int], str]) -> None:
    layer_ids = list(chosen)
    x_of = {i: n for n, i in enumerate(layer_ids)}
    y_of = {(i, c): 1 - n / max(len(cols) - 1, 1) for i, cols in chosen.items()
            for n, c in enumerate(cols)}
    if edges:
        weights = np.array([w for *_, w in edges]) / top_weight
        order = np.argsort(weights)
        segments = [[(x_of[i], y_of[(i, a)]), (x_of[i] + 1, y_of[(i + 1, b)])]
                    for i, a, b, _ in (edges[k] for k in order)]
        colours = np.zeros((len(order), 4))
        colours[:, 3] = 0.08 + 0.7 * weights[order]
        ax.add_collection(LineCollection(segments, linewidths=0.2 + 3.0 * weights[order],
                                         colors=colours, zorder=1))
    drawn = pd.Series([part["membership"][graph.layers[i].name][c]
                       for i in layer_ids for c in chosen[i]])
    sizes = drawn.value_counts()
    largest = sizes[sizes >= 2].index[:len(CLUSTER_COLOURS)]
    colour_of = {cluster: CLUSTER_COLOURS[n] for n, cluster in enumerate(largest)}
    for i in layer_ids:
        layer = graph.layers[i]
        values = np.abs(layer.eigenvalues.numpy())
        total = values[1:].sum() or 1.0
        clusters = part["membership"][layer.name]
        for c in chosen[i]:
            x, y = x_of[i], y_of[(i, c)]
            ax.scatter(x, y, s=48, color=colour_of.get(clusters[c], "white"), edgecolor="black",
                       lw=0.6, zorder=3)
            share = 100 * values[c] / total
            label = f"f{c} {share:.0f}%" if share >= 1 else f"f{c} {share:.1f}%"
            if (layer.name, c) in notes:
                label += " " + notes[(layer.name, c)]
            ax.annotate(label, (x, y),
                        xytext=(6, 0),
                        textcoords="offset points", ha="left", va="center", fontsize=7,
                        zorder=4, bbox={"fc": "white", "ec": "none", "alpha": 0.75, "pad": 0.2})
        ax.text(x_of[i], 1.07, names.get(layer.name, layer.name), ha="center", va="bottom",
                fontsize=9.5, fontweight="bold")
    ax.set_xlim(-0.3, len(layer_ids) - 0.45)
    ax.set_ylim(-0.05, 1.14)
    ax.axis("off")
    symbol = "\u039b" if method == "lib" else "D"
    possible = sum(len(chosen[i]) * len(chosen[i + 1]) for i in layer_ids if i + 1 in chosen)
    ax.set_title(f"{style.method_label(method)}: top {TOP_FEATURES} features per layer by "
                 f"{symbol} (label: share of the layer's {symbol}); colour: Leiden cluster at "
                 f"resolution {RESOLUTION:g} (whole-graph Q = {part['q']:.2f}); "
                 f"{len(edges)} of the {possible} edges among them are above eps", fontsize=9.5,
                 loc="left",
                 color=style.method_color(method))


def make_graph(runs: pd.DataFrame, experiment: str, out: Path) -> list[Path]:
    """The LIB and PCA graphs of the first seed that has both, one panel each."""
    seeds = sorted(set(runs[runs["method"] == "lib"]["seed"])
                   & set(runs[runs["method"] == "pca"]["seed"]))
    if not seeds:
        raise data.MissingResults(f"no seed of {experiment} has both LIB and PCA runs")
    panels = []
    for method in style.METHODS:
        run = runs[(runs["method"] == method) & (runs["seed"] == seeds[0])].iloc[0]
        graph = data.graph(run["path"], method)
        if graph.edges is None:
            raise data.MissingResults(f"{run['path']}/graph_{method}.pt has no edges")
        part = data.partition(run["path"], experiment, RESOLUTION)
        chosen = _chosen(graph, part["membership"], TOP_FEATURES)
        panels.append((method, graph, part, chosen, _edges(graph, chosen, part["eps"]),
                       _feature_notes(run["path"])))
    top_weight = max((w for *_, edges, _ in panels for *_, w in edges), default=1.0) or 1.0
    names = style.layer_names(data.node_layers(runs["path"].iloc[0]))
    n_layers = max(len(chosen) for *_, chosen, _, _ in panels)
    fig, axes = style.figure(2, 1, figsize=(2.9 * n_layers + 1.0, 10.5), squeeze=False)
    for ax, (method, graph, part, chosen, edges, notes) in zip(axes[:, 0], panels):
        _panel(ax, graph, part, chosen, edges, top_weight, names, method, notes)
    stored = all(notes for *_, notes in panels)
    fig.suptitle(f"Language model ({experiment}, seed {seeds[0]}): interaction graphs, LIB above "
                 "PCA; edge width and opacity: log10(E / eps), one scale for both panels\n"
                 + ("node label: feature, share of the layer's eigenvalues, the token it is "
                    "largest on, pos: share of its variance explained by token position"
                    if stored else "(no top tokens or position shares stored for these runs: "
                    "python -m interbasis.metrics.top_tokens / positions <run>)"),
                 fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)
