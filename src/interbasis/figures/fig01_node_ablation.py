"""Figure 1: modular addition, test accuracy vs number of kept features, LIB vs PCA.

One panel per rotated node layer (before attention, between attention and MLP, after the MLP).
Top row: our pipeline on our models (``modadd_paper``); bottom row, when its runs exist: our
pipeline on the LIB authors' five models (``modadd_authors``). Solid lines are our mean over seeds
(the band spans the lowest to the highest seed); dashed lines with open markers are the authors'
published curves (their pipeline on their models, mean of their 5 seeds, their exponential
schedule; ``results/reference/authors_modadd``): over all their seeds in the top row, over the
seeds we ran in the bottom one (the same models); purple: NGF (naive gradient flow) where such runs
exist. Dotted verticals: mean k required to stay within 0.001.
Reads ``curves.csv`` (node rows) and ``summary.json`` of every complete run of the experiments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style

STEM = "fig01_node_ablation"
X_MAX = 24  # every k_required (ours and the authors') is below 20; past it curves sit at the top
CHANCE = 1 / 113


def node_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Node-ablation rows of every run, with its method and seed."""
    frames = []
    for run in runs.itertuples():
        frame = data.curves(run.path)
        frame = frame[frame["kind"] == "node"].assign(method=run.method, seed=run.seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _mean_line(ax, rows: pd.DataFrame, x: str, y: str, color: str, label: str, band: bool,
               **line) -> None:
    table = rows.pivot_table(index=x, columns="seed", values=y).dropna()
    table = table[table.index <= X_MAX + 2]
    if table.empty:
        return
    mean = table.mean(axis=1)
    ax.plot(mean.index, mean.values, color=color, label=label, **line)
    if band and table.shape[1] > 1:
        ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=color,
                        alpha=0.15, lw=0)


def make(results: Path, out: Path, experiment: str = data.PAPER_EXPERIMENT) -> list[Path]:
    rows_of = {experiment: data.method_runs(results, experiment)}
    if experiment == data.PAPER_EXPERIMENT:
        theirs = data.optional_runs(results, data.AUTHORS_EXPERIMENT, style.METHODS)
        if not theirs.empty:
            rows_of[data.AUTHORS_EXPERIMENT] = theirs
    try:
        _, reference = data.authors_reference(results)
    except data.MissingResults:
        reference = None
    first = rows_of[experiment]
    layers = [name for name in data.node_layers(first["path"].iloc[0])
              if name in set(node_curves(first.iloc[:1])["layer"])]
    fig, axes = style.figure(len(rows_of), len(layers), figsize=(4.0 * len(layers),
                                                                 3.3 * len(rows_of) + 0.6),
                             sharey=True, squeeze=False)
    for r, (name, runs) in enumerate(rows_of.items()):
        ngf = data.optional_runs(results, name, ("ngf",))
        all_runs = pd.concat([runs, ngf], ignore_index=True) if not ngf.empty else runs
        curves = node_curves(all_runs)
        whose = "our models" if name == data.PAPER_EXPERIMENT else "the authors' models"
        for ax, layer in zip(axes[r], layers):
            for method in (*style.METHODS, "ngf"):
                rows = curves[(curves["layer"] == layer) & (curves["method"] == method)]
                if rows.empty:
                    continue
                color = style.method_color(method)
                seeds = sorted(rows["seed"].unique())
                _mean_line(ax, rows, "x", "score", color,
                           f"{style.seeds_label(method, seeds)}, our pipeline", band=True,
                           lw=1.6, marker=style.method_marker(method), ms=3)
                key = f"ablation/k_required@0.001/{layer}"
                chosen = all_runs[all_runs["method"] == method]
                if key in chosen and chosen[key].notna().any():
                    ax.axvline(chosen[key].mean(), color=color, ls=":", lw=1.1)
                if reference is not None and method in style.METHODS:
                    theirs = reference[(reference["layer"] == layer)
                                       & (reference["method"] == method)]
                    if name == data.AUTHORS_EXPERIMENT:  # the same models: the same seeds
                        theirs = theirs[theirs["seed"].isin(seeds)]
                    _mean_line(ax, theirs, "n_remaining", "accuracy", color,
                               f"{style.method_label(method)}, authors' published "
                               f"(mean of {theirs['seed'].nunique()})", band=False, lw=1.2,
                               ls=style.AUTHORS_LINESTYLE, marker=style.method_marker(method),
                               ms=4, mfc="white")
            base = curves.loc[curves["layer"] == layer, "base_score"].mean()
            ax.axhline(base, color="0.4", lw=0.8, ls="--")
            ax.axhline(CHANCE, color="0.6", lw=0.8, ls="-.")
            ax.set_title(f"{style.layer_label(layer)}: {whose}", fontsize=9.5)
            ax.set_xlim(0, X_MAX)
            ax.set_ylim(0, 1.03)
            if r == len(rows_of) - 1:
                ax.set_xlabel("features kept (k)")
        axes[r, 0].set_ylabel("test accuracy")
        axes[r, 0].legend(loc="lower right", fontsize=7)
    fig.suptitle("Modular addition: test accuracy with only the first k features of one layer "
                 f"kept ({', '.join(rows_of)})\ngrey dashed: unablated; dash-dot: chance (1/113); "
                 "dotted: mean k required to stay within 0.001; band: lowest to highest seed",
                 fontsize=10)
    fig.tight_layout()
    return style.save(fig, out, STEM)


def k_required_table(results: Path, experiment: str = data.PAPER_EXPERIMENT) -> pd.DataFrame:
    """Mean k_required@0.001 per layer and method (for the README's notes)."""
    runs = data.method_runs(results, experiment)
    columns = [c for c in runs if c.startswith("ablation/k_required@0.001/")]
    return runs.groupby("method")[columns].agg(np.mean).T
