"""Figure 5: the vision MLP (E2), LIB graph and edge sparsity vs PCA, and the class separation view.

For every vision experiment with LIB and PCA runs (``cifar_paper``, ``fashion_mlp``) it writes

- ``fig05_vision_<experiment>``: top row, edges required per transition and in total (mean over
  seeds, dots = seeds); bottom row, the fraction of a transition's edge weight held by its n
  largest edges (``edge_weight.csv``), LIB vs PCA, with the LIB interaction graph of seed 0 beside
  them (top features per layer, edges above the bisection's eps, width by log10(E / eps));
- ``fig05b_classes_<experiment>``: mean value per class of the first hidden layer's most
  class-group-separating features (``class_means.csv``, ``class_separation.csv``), LIB vs PCA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style
from interbasis.figures.fig02_edges_required import edges_required

STEM = "fig05_vision"
VISION_EXPERIMENTS = ("cifar_paper", "fashion_mlp")
TOP_FEATURES = 10  # nodes drawn per layer in the graph panel
STRONGEST_INPUTS = 3  # edges drawn into each node: its strongest inputs among the drawn nodes
CLASS_FEATURES = 6  # features shown in the class-separation view


def make(results: Path, out: Path) -> list[Path]:
    written, missing = [], []
    for experiment in VISION_EXPERIMENTS:
        try:
            runs = data.method_runs(results, experiment)
        except data.MissingResults as error:
            missing.append(str(error))
            continue
        written += sparsity_figure(runs, experiment, out)
        written += class_figure(runs, experiment, out)
    if not written:
        raise data.MissingResults(" / ".join(missing))
    return written


def _read_runs_csv(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    frames = []
    for _, run in runs.iterrows():
        path = Path(run["path"]) / name
        if not path.is_file():
            raise data.MissingResults(f"{path} is missing; rerun that run (vision runs write it)")
        frames.append(pd.read_csv(path).assign(method=run["method"], seed=run["seed"]))
    return pd.concat(frames, ignore_index=True)


def sparsity_figure(runs: pd.DataFrame, experiment: str, out: Path) -> list[Path]:
    panels, long = edges_required(runs)
    weight = _read_runs_csv(runs, "edge_weight.csv")
    transitions = list(dict.fromkeys(weight["transition"]))
    n_cols = max(len(panels), len(transitions) + 1)
    fig, axes = style.figure(2, n_cols, figsize=(3.0 * n_cols, 6.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for i, method in enumerate(style.METHODS):
            values = long[(long["panel"] == panel) & (long["method"] == method)]["edges"]
            color = style.method_color(method)
            ax.bar(i, values.mean(), width=0.6, color=color, alpha=0.35, edgecolor=color,
                   label=style.method_label(method))
            ax.scatter(np.full(len(values), i), values, color=color, s=20, zorder=3,
                       marker=style.method_marker(method), edgecolor="white", lw=0.5)
        means = long[long["panel"] == panel].groupby("method")["edges"].mean()
        ax.set_xticks(range(len(style.METHODS)), [f"{style.method_label(m)}\n{means[m]:.0f}"
                                                  for m in style.METHODS])
        ax.set_title(f"edges required: {_transition(panel)}", fontsize=9.5)
        ax.grid(axis="x", visible=False)
    for ax in axes[0, len(panels):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("non-constant edges required (0.001 acc.)")
    for ax, transition in zip(axes[1], transitions):
        for method in style.METHODS:
            rows = weight[(weight["transition"] == transition) & (weight["method"] == method)]
            for k, (_, curve) in enumerate(rows.groupby("seed")):
                ax.plot(curve["n_edges"], curve["fraction"], color=style.method_color(method),
                        lw=1.6 if k == 0 else 0.8, alpha=1.0 if k == 0 else 0.5,
                        label=style.method_label(method) if k == 0 else None)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("edges kept (largest first)")
        ax.set_title(f"edge weight held: {_transition(transition)}", fontsize=9.5)
    axes[1, 0].set_ylabel("fraction of total edge weight")
    axes[1, 0].legend(loc="lower right")
    for ax in axes[1, len(transitions) + 1:]:
        ax.axis("off")
    _draw_lib_graph(axes[1, len(transitions)], runs)
    fig.suptitle(f"Vision MLP ({experiment}): edges needed and edge-weight concentration, LIB vs "
                 f"PCA ({runs['seed'].nunique()} seeds; thin lines: other seeds)", fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, f"{STEM}_{experiment}")


def _transition(name: str) -> str:
    return "total" if name == "total" else name.replace("->", " \u2192 ")


def _draw_lib_graph(ax, runs: pd.DataFrame) -> None:
    lib = runs[runs["method"] == "lib"].iloc[0]
    graph = data.graph(lib["path"], "lib")
    eps = data.partition(lib["path"], lib["experiment"], 1.0)["eps"]
    shown = [list(range(1, min(layer.rank, TOP_FEATURES + 1))) for layer in graph.layers]
    for column, features in enumerate(shown):
        ax.scatter(np.full(len(features), column), -np.arange(len(features)), s=28, zorder=3,
                   color=style.method_color("lib"), edgecolor="black", lw=0.4)
    lines = []
    for index, edges in enumerate(graph.edges):
        limit = eps.get(graph.transition_names[index]) if isinstance(eps, dict) else None
        limit = limit or float(edges[1:, 1:].max()) * 1e-3
        for row, i in enumerate(shown[index + 1]):
            if i >= edges.shape[0]:
                continue
            inputs = edges[i, shown[index]]
            for col in inputs.argsort(descending=True)[:STRONGEST_INPUTS].tolist():
                value = float(inputs[col])
                if value >= limit:  # only edges the bisection keeps
                    lines.append((index, col, row, np.log10(value / limit)))
    top = max((strength for *_, strength in lines), default=1.0) or 1.0
    for index, col, row, strength in lines:
        ax.plot([index, index + 1], [-col, -row], color="0.25", zorder=1,
                lw=0.3 + 2.2 * strength / top, alpha=0.3 + 0.6 * strength / top)
    ax.set_xticks(range(len(shown)), [layer.name for layer in graph.layers])
    ax.set_yticks([])
    ax.set_xlim(-0.4, len(shown) - 0.6)
    ax.grid(False)
    ax.set_title(f"LIB graph, seed {lib['seed']}: top {TOP_FEATURES} features per layer,\n"
                 f"{STRONGEST_INPUTS} strongest inputs each (width: log10 E / eps)", fontsize=9)
    ax.set_xlabel("node layer (input of Linear)")


def class_figure(runs: pd.DataFrame, experiment: str, out: Path) -> list[Path]:
    means = _read_runs_csv(runs, "class_means.csv")
    separation = _read_runs_csv(runs, "class_separation.csv")
    seed = int(runs["seed"].min())
    layer = separation["layer"].min()
    fig, axes = style.figure(1, 2, figsize=(12.5, 4.6), squeeze=False, layout="constrained")
    for ax, method in zip(axes[0], style.METHODS):
        sep = separation[(separation["method"] == method) & (separation["seed"] == seed)
                         & (separation["layer"] == layer)].dropna(subset=["eta2_groups"])
        best = sep.nlargest(CLASS_FEATURES, "eta2_groups")
        table = means[(means["method"] == method) & (means["seed"] == seed)
                      & (means["layer"] == layer) & means["feature"].isin(best["feature"])]
        order = (table[["class", "class_name", "group"]].drop_duplicates()
                 .sort_values(["group", "class"]))
        grid = (table.pivot_table(index="feature", columns="class", values="mean")
                .reindex(index=best["feature"], columns=order["class"]))
        scaled = grid.div(grid.abs().max(axis=1), axis=0)  # each feature on its own scale
        image = ax.imshow(scaled.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(order)), [f"{n} ({g})" for n, g in
                                          zip(order["class_name"], order["group"])],
                      rotation=55, ha="right", fontsize=8)
        ax.set_yticks(range(len(best)), [f"f{f}  \u03b7\u00b2={e:.2f}" for f, e in
                                         zip(best["feature"], best["eta2_groups"])], fontsize=8)
        ax.grid(False)
        ax.set_title(f"{style.method_label(method)}: the layer-{layer} features that best "
                     "separate the class groups", fontsize=9.5)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8,
                 label="mean feature value per class / max |mean|")
    fig.suptitle(f"Vision MLP ({experiment}, seed {seed}): mean first-hidden-layer feature value "
                 "per class (\u03b7\u00b2: share of variance explained by the class groups)",
                 fontsize=10.5)
    return style.save(fig, out, f"fig05b_classes_{experiment}")
