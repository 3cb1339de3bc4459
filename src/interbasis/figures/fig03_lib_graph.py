"""Figure 3: the interaction graphs of modular addition, LIB beside PCA (and NGF), one seed.

Two files, the paper's two settings:
- ``fig03_lib_graph``: the main-text graph: seed 3, Leiden resolution 0.5, the top 30 features
  per layer, features in clusters of one hidden; LIB and PCA side by side;
- ``fig03_lib_graph_appendix``: the appendix graphs: resolution 1, the top 25 features per layer,
  LIB, PCA and, where the seed has one, NGF (naive gradient flow); seed 0 (the NGF runs' seed).
Both draw the LIB authors' models (``modadd_authors``, the paper's graphs are of those) when their
runs are in the results store, else ours (``modadd_paper``); a missing seed falls back to the
first seed there, and the title says which seed is drawn.

Each panel's columns are the rotated node layers (before attention, between attention and MLP,
after the MLP). In a column, the top features by eigenvalue (Lambda for LIB/NGF, D for PCA; the
constant left out) are sorted by Leiden cluster (largest cluster on top), then importance. A node
is a dot with its label to the right; its outgoing edges leave from the end of the label, so no
edge runs under a label. Edge width and opacity: log10(E / eps_l) / max (docs/method.md §7; edges at
or below eps_l, which the edge ablation does not need, are not drawn). Cluster colours are per
panel and avoid the method colours. Reads ``graph_<method>.pt``, ``modularity.json`` and
``fourier.csv`` of the chosen runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from interbasis.figures import data, style

STEM = "fig03_lib_graph"
SETTINGS = {  # stem suffix -> (seed, resolution, features per layer, hide singletons, methods)
    "": (3, 0.5, 30, True, ("lib", "pca")),
    "_appendix": (0, 1.0, 25, False, ("lib", "pca", "ngf")),
}
LABEL_WIDTH = 0.42  # of the 1.0 between columns: the label's room; edges leave after it
OTHER_CLUSTERS = "0.8"
NOTATION = (
    "Node label: the feature's top Fourier term over the (a, b) grid and its purity (that term's "
    "share of the feature's power).\n'ka', 'kb': a mode cos(2\u03c0k\u00b7a/113 + \u03c6) of "
    "input a or b;  'k(a+b)', 'k(a-b)': of the sum or difference;  'ka+mb': a product mode "
    "(frequency k in a, m in b).\nBefore attention a feature reading frequency k from both a "
    "and b splits its power between 'ka' and 'kb' (purity \u2264 0.5).  Node colour: Leiden "
    "cluster (per panel; grey: smaller clusters).")


def selected_features(layer, top: int) -> list[int]:
    """Basis columns of the ``top`` largest eigenvalues, the constant left out."""
    values = np.abs(layer.eigenvalues.numpy())
    order = [int(j) for j in np.argsort(-values, kind="stable")
             if not (layer.has_constant and j == 0)]
    return order[:top]


def experiment_to_draw(results: Path, seed: int) -> str:
    """The authors' models if LIB and PCA runs of ``seed`` exist there, else ours if they do
    there, else the authors' models if they have LIB and PCA runs at all, else ours."""
    candidates = (data.AUTHORS_EXPERIMENT, data.PAPER_EXPERIMENT)
    runs = {name: data.optional_runs(results, name, ("lib", "pca")) for name in candidates}
    for name in candidates:
        at_seed = runs[name][runs[name]["seed"] == seed] if not runs[name].empty else runs[name]
        if not at_seed.empty and {"lib", "pca"} <= set(at_seed["method"]):
            return name
    theirs = runs[data.AUTHORS_EXPERIMENT]
    if not theirs.empty and {"lib", "pca"} <= set(theirs["method"]):
        return data.AUTHORS_EXPERIMENT
    return data.PAPER_EXPERIMENT


def make(results: Path, out: Path, experiment: str | None = None, seed: int | None = None,
         resolution: float | None = None, top: int | None = None) -> list[Path]:
    """Both settings; ``seed``, ``resolution`` and ``top`` override them (tests, other graphs)."""
    paths = []
    for suffix, (s, res, n, hide, methods) in SETTINGS.items():
        s = s if seed is None else seed
        paths += make_one(results, out, STEM + suffix, experiment or experiment_to_draw(results, s),
                          s, res if resolution is None else resolution,
                          n if top is None else top, hide, methods)
    return paths


def make_one(results: Path, out: Path, stem: str, experiment: str, seed: int,
             resolution: float, top: int, hide_singletons: bool,
             methods: tuple[str, ...]) -> list[Path]:
    runs = data.method_runs(results, experiment, methods=("lib", "pca"))
    both = runs.groupby("seed")["method"].nunique()
    if seed not in set(both[both == 2].index):  # the first seed with LIB and PCA runs
        seed = int(both[both == 2].index.min()) if (both == 2).any() else int(runs["seed"].min())
    extra = data.optional_runs(results, experiment, tuple(m for m in methods
                                                         if m not in ("lib", "pca")))
    runs = pd.concat([runs, extra], ignore_index=True) if not extra.empty else runs
    chosen = [runs[(runs["method"] == m) & (runs["seed"] == seed)] for m in methods]
    chosen = [rows.iloc[0] for rows in chosen if not rows.empty]
    fig, axes = style.figure(1, len(chosen), figsize=(6.2 * len(chosen), 0.24 * top + 2.6),
                             squeeze=False)
    qs = []
    for ax, run in zip(axes[0], chosen):
        qs.append(draw_graph(ax, run, experiment, resolution, top, hide_singletons))
    whose = "the LIB authors' models" if experiment == data.AUTHORS_EXPERIMENT else "our models"
    hidden = "; features in clusters of one hidden" if hide_singletons else ""
    fig.suptitle(
        f"Interaction graphs of modular addition, {whose} ({experiment}), seed {seed}: top {top} "
        f"features per layer, Leiden resolution {resolution:g}{hidden}\n"
        + ", ".join(f"{style.method_label(r['method'])} Q = {q:.2f}" for r, q in zip(chosen, qs))
        + "; edge width and opacity: log10(E / eps) / max over the panel", fontsize=10.5)
    width_handles = [Line2D([], [], color="black", alpha=0.08 + 0.7 * w, lw=0.2 + 3.0 * w,
                            label=f"{w:g}") for w in (0.25, 0.5, 1.0)]
    fig.legend(handles=width_handles, title="edge width: log10(E/eps) / max", loc="lower left",
               ncol=3, fontsize=8, title_fontsize=8, bbox_to_anchor=(0.0, 0.05),
               alignment="left")
    fig.text(0.01, 0.005, NOTATION, fontsize=7.5, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return style.save(fig, out, stem)


def draw_graph(ax, run: pd.Series, experiment: str, resolution: float, top: int,
               hide_singletons: bool) -> float:
    """One method's graph in ``ax``; returns the partition's modularity Q."""
    method = run["method"]
    graph = data.graph(run["path"], method)
    part = data.partition(run["path"], experiment, resolution)
    fourier = data.fourier_table(run["path"], experiment)
    if graph.edges is None:
        raise data.MissingResults(f"{run['path']}/graph_{method}.pt has no edges; rerun it")
    layer_ids = [i for i, layer in enumerate(graph.layers) if layer.has_constant]
    membership = part["membership"]
    sizes = pd.Series([c for name in membership for c in membership[name] if c >= 0]
                      ).value_counts()
    chosen = {}
    for i in layer_ids:
        clusters = membership[graph.layers[i].name]
        columns = [c for c in selected_features(graph.layers[i], top)
                   if not (hide_singletons and sizes.get(clusters[c], 0) <= 1)]
        chosen[i] = columns
    drawn = pd.Series([membership[graph.layers[i].name][c] for i in layer_ids for c in chosen[i]])
    order = {cluster: n for n, cluster in enumerate(drawn.value_counts().index)}
    for i in layer_ids:
        clusters = membership[graph.layers[i].name]
        rank = {c: n for n, c in enumerate(chosen[i])}
        chosen[i] = sorted(chosen[i], key=lambda c: (order[clusters[c]], rank[c]))
    colour_of = {cluster: style.CLUSTER_COLORS[n] for cluster, n in order.items()
                 if n < len(style.CLUSTER_COLORS)}

    x_of = {i: n for n, i in enumerate(layer_ids)}
    rows = max(len(columns) for columns in chosen.values())
    y_of = {(i, c): 1 - n / max(rows - 1, 1) for i in layer_ids for n, c in enumerate(chosen[i])}
    segments, weights, ports = [], [], set()
    for i in layer_ids:
        if i + 1 not in x_of:
            continue
        name = graph.transition_names[i]
        E, eps = graph.edges[i].numpy(), part["eps"][name]
        for c_out in chosen[i + 1]:
            for c_in in chosen[i]:
                if E[c_out, c_in] > eps:
                    segments.append([(x_of[i] + LABEL_WIDTH, y_of[(i, c_in)]),
                                     (x_of[i + 1], y_of[(i + 1, c_out)])])
                    weights.append(np.log10(E[c_out, c_in] / eps))
                    ports.add((i, c_in))
    if weights:
        norm = np.asarray(weights) / max(weights)
        order_drawn = np.argsort(norm, kind="stable")  # heavy edges on top
        colours = np.zeros((len(norm), 4))
        colours[:, 3] = 0.08 + 0.7 * norm
        ax.add_collection(LineCollection(
            [segments[k] for k in order_drawn], linewidths=0.2 + 3.0 * norm[order_drawn],
            colors=colours[order_drawn], zorder=1))

    terms = fourier.set_index(["layer", "feature"])
    for i in layer_ids:
        layer = graph.layers[i]
        clusters = membership[layer.name]
        for c in chosen[i]:
            x, y = x_of[i], y_of[(i, c)]
            ax.scatter(x, y, s=42, color=colour_of.get(clusters[c], OTHER_CLUSTERS),
                       edgecolor="black", lw=0.5, zorder=3)
            row = terms.loc[(layer.name, c)] if (layer.name, c) in terms.index else None
            label = f"{row['term']} ({row['purity']:.2f})" if row is not None else f"#{c}"
            ax.annotate(label, (x, y), xytext=(5, 0), textcoords="offset points", ha="left",
                        va="center", fontsize=6.5, zorder=4)
            if (i, c) in ports:  # the port its outgoing edges leave from
                ax.plot([x + LABEL_WIDTH], [y], marker="o", ms=1.5, color="0.3", zorder=2)
        ax.text(x_of[i] + LABEL_WIDTH / 2, 1.04, style.layer_label(layer.name), ha="center",
                va="bottom", fontsize=9, fontweight="bold")
    ax.set_xlim(-0.08, len(layer_ids) - 1 + LABEL_WIDTH + 0.05)
    ax.set_ylim(-0.03, 1.09)
    ax.axis("off")
    ax.set_title(f"{style.method_label(method)}", fontsize=11, color=style.method_color(method),
                 fontweight="bold", pad=14)
    return float(part["q"])
