"""Figure 4: Fourier purity of LIB vs PCA features, modular addition.

Per rotated node layer, the top features by eigenvalue (Lambda for LIB, D for PCA; the ones the
node ablations need) of every seed: top row, purity (share of a feature's 2-D FFT power in its top
Fourier term); bottom row, the share held by its key frequency (all terms made of one frequency k:
k a, k b, k (a+b), k (a-b)). Boxes show quartiles, dots single features. Reads ``fourier.csv`` and
the graph files (for the eigenvalue order) of every complete run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style

STEM = "fig04_fourier_purity"
TOP_FEATURES = 25
ROWS = (("purity", "purity (top term's\nshare of power)"),
        ("key_frequency_share", "key-frequency share\nof power"))


def top_features(results: Path, experiment: str, top: int) -> pd.DataFrame:
    """Fourier rows of the ``top`` largest-eigenvalue features of each rotated layer and run."""
    runs = data.method_runs(results, experiment)
    frames = []
    for run in runs.itertuples():
        table = data.fourier_table(run.path, experiment)
        graph = data.graph(run.path, run.method)
        for layer in graph.layers:
            if not layer.has_constant:  # the logits are not rotated: not features of a basis
                continue
            values = np.abs(layer.eigenvalues.numpy())
            values[0] = -np.inf  # the constant direction
            keep = np.argsort(-values, kind="stable")[:min(top, layer.rank - 1)]
            rows = table[(table["layer"] == layer.name) & table["feature"].isin(keep)]
            frames.append(rows.assign(method=run.method, seed=run.seed))
    return pd.concat(frames, ignore_index=True)


def make(results: Path, out: Path, experiment: str = data.PAPER_EXPERIMENT,
         top: int = TOP_FEATURES) -> list[Path]:
    rows = top_features(results, experiment, top)
    layers = list(dict.fromkeys(rows["layer"]))
    fig, axes = style.figure(len(ROWS), len(layers), figsize=(3.7 * len(layers), 5.6),
                             sharey="row", squeeze=False)
    rng = np.random.default_rng(0)  # jitter of the dots only
    for col, layer in enumerate(layers):
        for row, (column, label) in enumerate(ROWS):
            ax = axes[row, col]
            for i, method in enumerate(style.METHODS):
                values = rows[(rows["layer"] == layer) & (rows["method"] == method)][column]
                values = values.dropna().to_numpy()
                color = style.method_color(method)
                if len(values):
                    ax.boxplot([values], positions=[i], widths=0.5, showfliers=False,
                               medianprops={"color": color, "lw": 2},
                               boxprops={"color": color}, whiskerprops={"color": color},
                               capprops={"color": color})
                    ax.scatter(i + rng.uniform(-0.18, 0.18, len(values)), values, s=9,
                               color=color, alpha=0.55, marker=style.method_marker(method),
                               lw=0, zorder=3)
                    ax.annotate(f"median {np.median(values):.2f}", (i, 1.02),
                                ha="center", va="bottom", fontsize=8, color=color)
            ax.set_xticks(range(len(style.METHODS)),
                          [style.method_label(m) for m in style.METHODS])
            ax.set_xlim(-0.6, len(style.METHODS) - 0.4)
            ax.set_ylim(0, 1.1)
            ax.grid(axis="x", visible=False)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(style.layer_label(layer), pad=14)
    n_seeds = rows.groupby("method")["seed"].nunique().to_dict()
    seeds = ", ".join(f"{style.method_label(m)} {n_seeds.get(m, 0)}" for m in style.METHODS)
    fig.suptitle(f"Modular addition: Fourier purity of the top {top} features per layer "
                 f"({experiment}; seeds: {seeds})\nbefore attention a feature reading one "
                 "frequency from both a and b splits its power over two terms (purity <= 0.5)",
                 fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, STEM)
