"""Figure 5: the vision MLP (E2), LIB graph and edge sparsity vs PCA, and the class separation view.

For every vision experiment with LIB and PCA runs (``cifar_paper``, ``fashion_mlp``) it writes

- ``fig05_vision_<experiment>``: top row, edges required per transition and in total (mean over
  seeds, dots = seeds, log scale, with the share of possible edges); bottom row, the fraction of a
  transition's edge weight held by its n largest edges (``edge_weight.csv``), LIB vs PCA;
- ``fig05c_graph_<experiment>``: the LIB interaction graph of the first seed (top features per
  layer, edges above the bisection's eps, width by log10(E / eps)), nodes labelled;
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


STAND_IN = {"fashion_mlp": "Fashion-MNIST standing in for CIFAR-10 (no CIFAR-10 runs stored)"}


def possible_edges(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run and transition (and total), the non-constant edges there are: the last count of
    its edge bisection in ``curves.csv`` (every edge kept)."""
    frames = []
    for run in runs.itertuples():
        curves = data.curves(run.path)
        edges = curves[curves["kind"] == "edge"].groupby("layer")["x"].max()
        frames.append(pd.DataFrame({"method": run.method, "seed": run.seed,
                                    "panel": [*edges.index, "total"],
                                    "possible": [*edges.to_numpy(), edges.sum()]}))
    return pd.concat(frames, ignore_index=True)


def sparsity_figure(runs: pd.DataFrame, experiment: str, out: Path) -> list[Path]:
    panels, long = edges_required(runs)
    long = long.merge(possible_edges(runs), on=["method", "seed", "panel"], how="left")
    names = style.transition_names(data.node_layers(runs["path"].iloc[0]))
    weight = _read_runs_csv(runs, "edge_weight.csv")
    transitions = list(dict.fromkeys(weight["transition"]))
    n_cols = max(len(panels), len(transitions) + 1)
    fig, axes = style.figure(2, n_cols, figsize=(3.0 * n_cols, 6.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for i, method in enumerate(style.METHODS):
            values = long[(long["panel"] == panel) & (long["method"] == method)]["edges"]
            color = style.method_color(method)
            # a mean line, not a bar: bar heights mean nothing on a log axis
            ax.hlines(values.mean(), i - 0.3, i + 0.3, color=color, lw=2.5,
                      label=style.method_label(method))
            ax.scatter(np.full(len(values), i), values, color=color, s=20, zorder=3,
                       marker=style.method_marker(method), edgecolor="white", lw=0.5)
        cell = long[long["panel"] == panel]
        means = cell.groupby("method")["edges"].mean()
        shares = (cell["edges"] / cell["possible"]).groupby(cell["method"]).mean()
        ax.set_xticks(range(len(style.METHODS)), [
            f"{style.method_label(m)}\n{means[m]:.0f}" + (
                f"\n({100 * shares[m]:.0f}% of possible)" if np.isfinite(shares.get(m, np.nan))
                else "") for m in style.METHODS], fontsize=8.5)
        ax.set_yscale("log")
        ax.set_title(f"edges required: {names.get(panel, panel)}", fontsize=9.5)
        ax.grid(axis="x", visible=False)
    for ax in axes[0, len(panels):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("non-constant edges required\n(within 0.001 accuracy; log scale)")
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
        ax.set_title(f"edge weight held: {names.get(transition, transition)}", fontsize=9.5)
    axes[1, 0].set_ylabel("fraction of total edge weight")
    axes[1, 0].legend(loc="lower right")
    for ax in axes[1, len(transitions):]:
        ax.axis("off")
    if len(transitions) < n_cols:
        axes[1, len(transitions)].annotate(
            f"the LIB interaction graph:\nfig05c_graph_{experiment}.png", (0.5, 0.5),
            xycoords="axes fraction", ha="center", va="center", fontsize=9, color="0.35")
    what = STAND_IN.get(experiment, experiment)
    fig.suptitle(f"Vision MLP, {what}: edges needed and edge-weight concentration, LIB vs PCA\n"
                 f"top: line = mean of {runs['seed'].nunique()} seeds, dots = single seeds; "
                 f"bottom: thick line seed {int(runs['seed'].min())}, thin lines the other seeds",
                 fontsize=10.5)
    fig.tight_layout()
    written = style.save(fig, out, f"{STEM}_{experiment}")
    fig, ax = style.figure(figsize=(10.5, 6.0))
    _draw_lib_graph(ax, runs)
    fig.suptitle(f"Vision MLP, {STAND_IN.get(experiment, experiment)}: the LIB interaction graph",
                 fontsize=10.5)
    fig.tight_layout()
    return written + style.save(fig, out, f"fig05c_graph_{experiment}")


def _transition(name: str) -> str:
    return "total" if name == "total" else name.replace("->", " \u2192 ")


def _top_classes(path: str, layer: str) -> dict[int, str]:
    """Feature -> the class with the largest |mean value| (and its sign), where stored; for the
    logits (unrotated), feature i is class i's logit."""
    file = Path(path) / "class_means.csv"
    if not file.is_file():
        return {}
    means = pd.read_csv(file)
    if layer == "output":
        names = means.drop_duplicates("class").set_index("class")["class_name"]
        return {int(c): str(name) for c, name in names.items()}
    means = means[means["layer"].astype(str) == str(layer)]
    labels = {}
    for feature, rows in means.groupby("feature"):
        top = rows.loc[rows["mean"].abs().idxmax()]
        labels[int(feature)] = f"{top['class_name']} {'+' if top['mean'] > 0 else '-'}"
    return labels


def _draw_lib_graph(ax, runs: pd.DataFrame) -> None:
    lib = runs[runs["method"] == "lib"].iloc[0]
    graph = data.graph(lib["path"], "lib")
    names = style.layer_names([layer.name for layer in graph.layers])
    eps = data.partition(lib["path"], lib["experiment"], 1.0)["eps"]
    # features 1.. of rotated layers (0 is the constant); the logits from 0, one per class
    shown = [list(range(1, min(layer.rank, TOP_FEATURES + 1))) if layer.has_constant
             else list(range(min(layer.rank, TOP_FEATURES))) for layer in graph.layers]
    for column, features in enumerate(shown):
        ax.scatter(np.full(len(features), column), -np.arange(len(features)), s=28, zorder=3,
                   color=style.method_color("lib"), edgecolor="black", lw=0.4)
        classes = _top_classes(lib["path"], graph.layers[column].name)
        for row, feature in enumerate(features):
            text = f"f{feature}" + (f" {classes[feature]}" if feature in classes else "")
            if not graph.layers[column].has_constant:  # the logits: one per class
                text = classes.get(feature, f"logit {feature}")
            ax.annotate(text, (column, -row), xytext=(6, 0), textcoords="offset points",
                        fontsize=8, va="center", ha="left", zorder=4, color="0.15",
                        bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.3})
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
    ax.set_xticks(range(len(shown)), [names.get(layer.name, layer.name)
                                      for layer in graph.layers], fontsize=9.5)
    ax.set_yticks([])
    ax.set_xlim(-0.15, len(shown) - 0.35)
    ax.spines["left"].set_visible(False)
    ax.grid(False)
    ax.set_title(f"LIB graph, seed {lib['seed']}: features 1-{TOP_FEATURES} (by \u039b) per "
                 f"layer;\n{STRONGEST_INPUTS} strongest needed inputs each, width ~ log10(E / eps);"
                 "\nlabels: feature and, where class means are stored, the class with the largest "
                 "|mean| (its sign)", fontsize=9.5)


def class_figure(runs: pd.DataFrame, experiment: str, out: Path) -> list[Path]:
    means = _read_runs_csv(runs, "class_means.csv")
    separation = _read_runs_csv(runs, "class_separation.csv")
    seed = int(runs["seed"].min())
    layer = separation["layer"].min()
    layer_name = style.layer_names(data.node_layers(runs["path"].iloc[0])).get(str(layer),
                                                                                str(layer))
    best = separation[separation["layer"] == layer].groupby(["method", "seed"])["eta2_groups"].max()
    per_seed = "; ".join(f"{style.method_label(m)} " + " / ".join(
        f"{best.get((m, s), np.nan):.2f}" for s in sorted(runs["seed"].unique()))
        for m in style.METHODS)
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
        bounds = np.flatnonzero(order["group"].to_numpy()[1:] != order["group"].to_numpy()[:-1])
        for bound in bounds:  # a line between the class groups
            ax.axvline(bound + 0.5, color="black", lw=1.2)
        ax.set_title(f"{style.method_label(method)}: the {layer_name} features that best "
                     "separate the class groups", fontsize=9.5)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8,
                 label="mean feature value per class / max |mean|")
    groups = ", ".join(sorted(means["group"].dropna().unique()))
    fig.suptitle(f"Vision MLP, {STAND_IN.get(experiment, experiment)}, seed {seed}: mean "
                 f"{layer_name} feature value per class\n(\u03b7\u00b2: share of a feature's "
                 f"variance explained by the {means['group'].nunique()} class groups {groups}; "
                 f"best {layer_name} \u03b7\u00b2 per seed: {per_seed})", fontsize=10.5)
    return style.save(fig, out, f"fig05b_classes_{experiment}")
