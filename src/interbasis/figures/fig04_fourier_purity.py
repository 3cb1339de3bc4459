"""Figure 4: Fourier purity of LIB vs PCA features, modular addition.

Per rotated node layer, the top features by eigenvalue (Lambda for LIB, D for PCA; the ones the
node ablations need) of every seed. Top row (the primary view, the paper's Fig. 3 is a KDE): the
kernel density of the share of a feature's 2-D FFT power held by its key frequency (all terms made
of one frequency k: k a, k b, k (a+b), k (a-b), the authors' labelling, which counts
cos(ka) + cos(kb) as one term), pooled over seeds and per seed. Bottom row: purity (the top single
term's share), as boxes (quartiles) and dots (features); before attention it is capped at 0.5.
Reads ``fourier.csv`` and the graph files (for the eigenvalue order) of every complete run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style

STEM = "fig04_fourier_purity"
TOP_FEATURES = 25
ROWS = (("key_frequency_share", "key-frequency share\nof power"),
        ("purity", "purity (top term's\nshare of power)"))
GRID = np.linspace(0.0, 1.0, 201)


def kde(values, grid: np.ndarray = GRID, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density of values in [0, 1], reflected at 0 and 1 so no mass leaks out.

    Bandwidth: Scott's rule (sigma * n^(-1/5)), at least 0.02 so a few identical values still
    draw a bump. Integrates to 1 over [0, 1]; an empty input gives zeros.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return np.zeros_like(grid)
    h = bandwidth or max(0.02, float(v.std()) * len(v) ** -0.2)
    mirrored = np.concatenate([v, -v, 2.0 - v])
    z = (grid[:, None] - mirrored[None, :]) / h
    return np.exp(-0.5 * z ** 2).sum(axis=1) / (len(v) * h * np.sqrt(2 * np.pi))


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
    fig, axes = style.figure(len(ROWS), len(layers), figsize=(3.9 * len(layers), 6.4),
                             squeeze=False, gridspec_kw={"height_ratios": [1.25, 1.0]})
    _kde_row(axes[0], rows, layers)
    _box_row(axes[1], rows, layers)
    n_seeds = rows.groupby("method")["seed"].nunique().to_dict()
    seeds = ", ".join(f"{style.method_label(m)} {n_seeds.get(m, 0)}" for m in style.METHODS)
    fig.suptitle(f"Modular addition: Fourier content of the top {top} features per layer "
                 f"({experiment}; seeds: {seeds})\ntop: density of the key-frequency share "
                 "(thick: all seeds, thin: one seed each; ticks: features); bottom: purity, the "
                 "top single term's share\n(before attention a feature reading one frequency "
                 "from both a and b splits its power over two terms, so purity <= 0.5 there)",
                 fontsize=10)
    fig.tight_layout()
    return style.save(fig, out, STEM)


def _kde_row(axes, rows: pd.DataFrame, layers: list[str]) -> None:
    column, label = ROWS[0]
    for ax, layer in zip(axes, layers):
        for method in style.METHODS:
            mine = rows[(rows["layer"] == layer) & (rows["method"] == method)]
            color = style.method_color(method)
            for _, seed_rows in mine.groupby("seed"):
                ax.plot(GRID, kde(seed_rows[column]), color=color, lw=0.7, alpha=0.35)
            values = mine[column].dropna().to_numpy()
            ax.plot(GRID, kde(values), color=color, lw=2.0,
                    label=f"{style.method_label(method)} (median {np.median(values):.2f})"
                    if len(values) else style.method_label(method))
            # a rug of the single features under the curves (y in axes units)
            ax.plot(values, np.full(len(values), 0.06 if method == "lib" else 0.02), "|",
                    color=color, ms=5, alpha=0.5, transform=ax.get_xaxis_transform())
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=-0.12 * ax.get_ylim()[1])  # room for the rug
        ax.set_title(style.layer_label(layer))
        ax.set_xlabel(label.replace("\n", " "))
        ax.legend(loc="upper left", fontsize=8.5)
    axes[0].set_ylabel("density (features)")


def _box_row(axes, rows: pd.DataFrame, layers: list[str]) -> None:
    column, label = ROWS[1]
    rng = np.random.default_rng(0)  # jitter of the dots only
    for col, (ax, layer) in enumerate(zip(axes, layers)):
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
        ax.set_xticks(range(len(style.METHODS)), [style.method_label(m) for m in style.METHODS])
        ax.set_xlim(-0.6, len(style.METHODS) - 0.4)
        ax.set_ylim(0, 1.12)
        ax.grid(axis="x", visible=False)
        if col == 0:
            ax.set_ylabel(label)
