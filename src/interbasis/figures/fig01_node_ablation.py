"""Figure 1: modular addition, test accuracy vs number of kept features, LIB vs PCA.

One panel per rotated node layer (before attention, between attention and MLP, after the MLP).
Lines are the mean over seeds; the band spans the lowest to the highest seed when there are several.
Reads ``curves.csv`` (node rows) and ``summary.json`` of every complete run of the experiment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style

STEM = "fig01_node_ablation"
X_MAX = 30  # every k_required of the paper is below 20; past 30 all curves sit at the top


def node_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Node-ablation rows of every run, with its method and seed."""
    frames = []
    for run in runs.itertuples():
        frame = data.curves(run.path)
        frame = frame[frame["kind"] == "node"].assign(method=run.method, seed=run.seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def make(results: Path, out: Path, experiment: str = data.PAPER_EXPERIMENT) -> list[Path]:
    runs = data.method_runs(results, experiment)
    curves = node_curves(runs)
    layers = [name for name in data.node_layers(runs["path"].iloc[0])
              if name in set(curves["layer"])]
    fig, axes = style.figure(1, len(layers), figsize=(4.0 * len(layers), 3.6), sharey=True,
                             squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for method in style.METHODS:
            rows = curves[(curves["layer"] == layer) & (curves["method"] == method)]
            # one column per seed; k evaluated by every seed only, so the mean is over all seeds
            table = rows.pivot_table(index="x", columns="seed", values="score").dropna()
            n_seeds = table.shape[1]
            mean = table.mean(axis=1)
            color = style.method_color(method)
            ax.plot(mean.index, mean.values, color=color, lw=1.8,
                    marker=style.method_marker(method), ms=3.5,
                    label=style.seeds_label(method, list(table.columns)))
            if n_seeds > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=color,
                                alpha=0.2, lw=0)
            key = f"ablation/k_required@0.001/{layer}"
            if key in runs:
                k_mean = runs.loc[runs["method"] == method, key].mean()
                ax.axvline(k_mean, color=color, ls=":", lw=1.2)
        base = curves.loc[curves["layer"] == layer, "base_score"].mean()
        ax.axhline(base, color="0.4", lw=0.8, ls="--")
        ax.set_title(style.layer_label(layer))
        ax.set_xlabel("features kept (k)")
        ax.set_xlim(0, X_MAX)
        ax.set_ylim(0, 1.03)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(loc="lower right")
    score_name = str(curves["score_name"].iloc[0])
    fig.suptitle(f"Modular addition: {score_name} with only the first k features of one layer "
                 f"kept ({experiment})\n"
                 "dashed: unablated; dotted: mean k required to stay within 0.001"
                 + ("; band: lowest to highest seed" if runs["seed"].nunique() > 1 else ""),
                 fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)


def k_required_table(results: Path, experiment: str = data.PAPER_EXPERIMENT) -> pd.DataFrame:
    """Mean k_required@0.001 per layer and method (for the README's notes)."""
    runs = data.method_runs(results, experiment)
    columns = [c for c in runs if c.startswith("ablation/k_required@0.001/")]
    return runs.groupby("method")[columns].agg(np.mean).T
