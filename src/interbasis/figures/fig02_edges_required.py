"""Figure 2: modular addition, edges required to stay within 0.001 accuracy, LIB vs PCA.

One panel per transition and one for the total: bars are the mean over seeds, dots the seeds, the
number on a bar its mean. Reads ``ablation/edges_required@0.001/*`` from each run's summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style

STEM = "fig02_edges_required"
PREFIX = "ablation/edges_required@0.001/"


def edges_required(runs: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """(panel names in model order, long frame: method, seed, panel, edges)."""
    layers = data.node_layers(runs["path"].iloc[0])
    transitions = [f"{a}->{b}" for a, b in zip(layers, layers[1:])]
    panels = [name for name in [*transitions, "total"] if PREFIX + name in runs]
    if not panels:
        raise data.MissingResults(
            f"no {PREFIX}* in the summaries of {runs['experiment'].iloc[0]}: the runs had "
            "ablation.edges=false; rerun them with edge ablations")
    long = runs.melt(id_vars=["method", "seed"], value_vars=[PREFIX + p for p in panels],
                     var_name="panel", value_name="edges")
    long["panel"] = long["panel"].str.removeprefix(PREFIX)
    return panels, long.dropna(subset=["edges"])


def make(results: Path, out: Path, experiment: str = data.PAPER_EXPERIMENT) -> list[Path]:
    runs = data.method_runs(results, experiment)
    panels, long = edges_required(runs)
    fig, axes = style.figure(1, len(panels), figsize=(2.9 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        means = {}
        for i, method in enumerate(style.METHODS):
            values = long[(long["panel"] == panel) & (long["method"] == method)]["edges"]
            color = style.method_color(method)
            mean = values.mean()
            ax.bar(i, mean, width=0.6, color=color, alpha=0.35, edgecolor=color, lw=1.2,
                   label=style.method_label(method))
            ax.scatter(np.full(len(values), i), values, color=color, s=22, zorder=3,
                       marker=style.method_marker(method), edgecolor="white", lw=0.5)
            means[method] = mean
        # a grey line pairs each seed's LIB and PCA value: "fewer edges in most seeds" is visible
        pairs = long[long["panel"] == panel].pivot_table(index="seed", columns="method",
                                                         values="edges")
        if len(pairs) > 1 and set(style.METHODS) <= set(pairs):
            for _, pair in pairs[list(style.METHODS)].dropna().iterrows():
                ax.plot([0, 1], pair.values, color="0.55", lw=0.7, zorder=2)
        # the mean goes under the bar, where no seed dot can cover it
        ax.set_xticks(range(len(style.METHODS)),
                      [f"{style.method_label(m)}\n{means[m]:.0f}" for m in style.METHODS])
        ax.set_title(style.transition_label(panel), fontsize=9.5)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.05)
        ax.grid(axis="x", visible=False)
    axes[0, 0].set_ylabel("non-constant edges required")
    n_seeds = runs.groupby("method")["seed"].nunique().to_dict()
    seeds = ", ".join(f"{style.method_label(m)} {n_seeds.get(m, 0)}" for m in style.METHODS)
    fig.suptitle(f"Modular addition: edges needed to stay within 0.001 test accuracy "
                 f"({experiment}; seeds: {seeds})\nbars and numbers: mean over seeds; dots: seeds "
                 "(a grey line joins one seed's LIB and PCA)", fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)


def table(results: Path, experiment: str = data.PAPER_EXPERIMENT) -> pd.DataFrame:
    """Mean edges required per transition and method, and the LIB/PCA ratio."""
    runs = data.method_runs(results, experiment)
    panels, long = edges_required(runs)
    means = long.pivot_table(index="panel", columns="method", values="edges").reindex(panels)
    means["lib/pca"] = means["lib"] / means["pca"]
    return means
