"""Figure 6c: the positional view of language-model features, LIB vs PCA.

One panel per node layer of the language model: for the first 24 features of each basis (the
order the basis gives: Lambda for LIB, variance for PCA), the share of the feature's variance that
token position explains (``positions.csv``, ``python -m interbasis.metrics.positions``), one
marker per seed, the line through the seeds' mean. 0: position says nothing about the feature;
1: the feature is a function of position alone. Drawn by figure 6's ``make`` when the runs have
``positions.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style
from interbasis.metrics.positions import POSITIONS_FILE

STEM = "fig06c_lm_positions"
TOP = 24


def make_positions(runs: pd.DataFrame, experiment: str, out: Path, stem: str = STEM
                   ) -> list[Path]:
    """The figure, or nothing when no run of ``experiment`` has ``positions.csv``."""
    tables = []
    for run in runs.itertuples():
        path = Path(run.path) / POSITIONS_FILE
        if run.method in style.METHODS and path.is_file():
            tables.append(pd.read_csv(path).assign(method=run.method, seed=run.seed))
    if not tables:
        return []
    table = pd.concat(tables, ignore_index=True)
    table = table[table["feature"] <= TOP]
    layers = list(dict.fromkeys(table["layer"]))
    names = style.layer_names(data.node_layers(runs["path"].iloc[0]))
    # up to 5 panels in a row; more (SmolLM2's seven node layers) wrap into balanced rows
    n_rows = -(-len(layers) // 5)
    n_cols = -(-len(layers) // n_rows)
    fig, axes = style.figure(n_rows, n_cols, figsize=(3.0 * n_cols, 3.4 * n_rows + 0.4),
                             sharey=True, squeeze=False)
    seeds = table.groupby("method")["seed"].nunique().to_dict()
    for ax, layer in zip(axes.flat, layers):
        mine = table[table["layer"] == layer]
        for i, method in enumerate(style.METHODS):
            rows = mine[mine["method"] == method]
            if rows.empty:
                continue
            color, marker = style.method_color(method), style.method_marker(method)
            shift = (i - 0.5) * 0.25
            ax.scatter(rows["feature"] + shift, rows["position_share"], s=14, color=color,
                       marker=marker, alpha=0.55, lw=0)
            mean = rows.groupby("feature")["position_share"].mean()
            ax.plot(mean.index + shift, mean.to_numpy(), color=color, lw=1.1,
                    label=f"{style.method_label(method)} ({seeds.get(method, 0)} seed"
                          f"{'s' if seeds.get(method, 0) != 1 else ''}; median "
                          f"{np.nanmedian(rows['position_share']):.2f})")
        ax.set_title(names.get(layer, layer), fontsize=9.5)
        ax.set_xlabel(f"feature (basis order, first {TOP})")
        ax.set_ylim(-0.03, 1.03)
        ax.legend(loc="upper right", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("share of the feature's variance\nexplained by token position")
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle(f"Language model ({experiment}): how positional are the features? "
                 "(on the train windows the basis was built on)", fontsize=10.5)
    fig.tight_layout()
    return style.save(fig, out, stem)
