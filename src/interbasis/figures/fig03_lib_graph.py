"""Figure 3: the LIB interaction graph of modular addition (one seed).

Columns are the rotated node layers (before attention, between attention and MLP, after the MLP);
each shows its top features by Lambda (the LIB importance), grouped by Leiden cluster. Edge width
and opacity are the spec-section-7 weight log10(E / eps_l) (clipped at 0), divided by the largest
weight drawn; edges at or below eps_l (not needed by the edge ablation) are not drawn. Nodes are
coloured by the stored Leiden partition (resolution 0.5, the paper's main-text graph) and labelled
by their top Fourier term and its purity.

Reads ``graph_lib.pt``, ``modularity.json`` and ``fourier.csv`` of the LIB run of one seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from interbasis.figures import data, style

STEM = "fig03_lib_graph"
TOP_FEATURES = 25
RESOLUTION = 0.5
N_COLOURED = 10  # clusters beyond the 10 largest drawn share one grey, as do lone nodes


def selected_features(layer, top: int) -> list[int]:
    """Basis columns of the ``top`` largest eigenvalues, the constant left out."""
    values = np.abs(layer.eigenvalues.numpy())
    order = [int(j) for j in np.argsort(-values, kind="stable")
             if not (layer.has_constant and j == 0)]
    return order[:top]


def make(results: Path, out: Path, experiment: str = data.PAPER_EXPERIMENT, seed: int | None = None,
         resolution: float = RESOLUTION, top: int = TOP_FEATURES) -> list[Path]:
    runs = data.method_runs(results, experiment, methods=("lib",))
    run = runs.iloc[0] if seed is None else runs[runs["seed"] == seed].iloc[0]
    graph = data.graph(run["path"], "lib")
    part = data.partition(run["path"], experiment, resolution)
    fourier = data.fourier_table(run["path"], experiment)
    if graph.edges is None:
        raise data.MissingResults(f"{run['path']}/graph_lib.pt has no edges; rerun with edges")
    # the rotated layers: the logits are left unrotated and are not LIB features
    layer_ids = [i for i, layer in enumerate(graph.layers) if layer.has_constant]

    chosen = {}  # layer index -> basis columns, ordered by cluster then importance
    for i in layer_ids:
        layer = graph.layers[i]
        columns = selected_features(layer, top)
        clusters = part["membership"][layer.name]
        rank = {c: n for n, c in enumerate(columns)}
        chosen[i] = sorted(columns, key=lambda c: (clusters[c], rank[c]))

    # cluster colours: the largest clusters among the drawn nodes get distinct colours
    drawn = pd.Series([part["membership"][graph.layers[i].name][c]
                       for i in layer_ids for c in chosen[i]])
    sizes = drawn.value_counts()
    largest = sizes[sizes >= 2].index[:N_COLOURED]  # a lone node's cluster says nothing
    palette = colormaps["tab10"]
    colour_of = {cluster: palette(n) for n, cluster in enumerate(largest)}

    height = max(6.0, 0.27 * top + 1.5)
    fig, ax = style.figure(figsize=(3.6 * len(layer_ids) + 1.0, height))
    x_of = {i: n for n, i in enumerate(layer_ids)}
    y_of = {}
    for i in layer_ids:
        for n, c in enumerate(chosen[i]):
            y_of[(i, c)] = 1 - n / max(len(chosen[i]) - 1, 1)

    # edges between drawn nodes of consecutive rotated layers
    segments, weights = [], []
    eps = part["eps"]
    for i in layer_ids:
        if i + 1 not in x_of:
            continue
        name = graph.transition_names[i]
        E = graph.edges[i].numpy()
        for c_out in chosen[i + 1]:
            for c_in in chosen[i]:
                w = np.log10(E[c_out, c_in] / eps[name]) if E[c_out, c_in] > eps[name] else 0.0
                if w > 0:
                    segments.append([(x_of[i], y_of[(i, c_in)]),
                                     (x_of[i + 1], y_of[(i + 1, c_out)])])
                    weights.append(w)
    weights = np.asarray(weights)
    if len(weights):
        norm = weights / weights.max()
        order = np.argsort(norm)  # heavy edges on top
        colours = np.zeros((len(norm), 4))
        colours[:, 3] = 0.08 + 0.7 * norm
        lines = LineCollection([segments[k] for k in order], linewidths=0.2 + 3.0 * norm[order],
                               colors=colours[order], zorder=1)
        ax.add_collection(lines)

    terms = fourier.set_index(["layer", "feature"])
    for i in layer_ids:
        layer = graph.layers[i]
        clusters = part["membership"][layer.name]
        for c in chosen[i]:
            x, y = x_of[i], y_of[(i, c)]
            ax.scatter(x, y, s=60, color=colour_of.get(clusters[c], "0.75"), edgecolor="black",
                       lw=0.6, zorder=3)
            row = terms.loc[(layer.name, c)] if (layer.name, c) in terms.index else None
            label = f"{row['term']} ({row['purity']:.2f})" if row is not None else f"#{c}"
            left = x_of[i] == 0
            ax.annotate(label, (x, y), xytext=(-7 if left else 7, 0), textcoords="offset points",
                        ha="right" if left else "left", va="center", fontsize=7.5, zorder=4,
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                              "alpha": 0.8})
        ax.text(x_of[i], 1.06, style.layer_label(layer.name), ha="center", va="bottom",
                fontsize=10, fontweight="bold")

    ax.set_xlim(-0.55, len(layer_ids) - 0.45)
    ax.set_ylim(-0.04, 1.1)
    ax.axis("off")
    handles = [Line2D([], [], marker="o", ls="", color=colour_of[c], markeredgecolor="black",
                      label=f"cluster {n + 1}") for n, c in enumerate(largest)]
    handles.append(Line2D([], [], marker="o", ls="", color="0.75", markeredgecolor="black",
                          label="clusters of one drawn node"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01),
              ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(
        f"LIB interaction graph, modular addition ({experiment}, seed {run['seed']}): top {top} "
        f"features per layer by Lambda\nnodes: Leiden cluster at resolution {resolution:g} "
        f"(Q = {part['q']:.2f}), label: top Fourier term (purity); "
        "edge width: log10(E / eps) / max", fontsize=10)
    fig.tight_layout()
    return style.save(fig, out, STEM)
