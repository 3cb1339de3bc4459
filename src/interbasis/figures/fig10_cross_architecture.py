"""Figure 10: LIB / PCA ratios across architectures, as a table and a chart.

One row per experiment that holds complete LIB and PCA runs (a new model family gains its row as
soon as its runs exist). Per run, from its summary:

- features required: mean over node layers of ``ablation/k_required@0.001``;
- edges required: ``ablation/edges_required@0.001/total`` (language models, whose score is a
  cross-entropy in nats, use their edge delta for both, shown in the ``delta`` column);
- edges_99: ``sparsity/edges_99`` summed over transitions;
- modularity: ``modularity/q``.

Each is averaged over seeds per method; the ratio is LIB mean / PCA mean (below 1: LIB needs fewer
features or edges; for modularity above 1 means LIB's graph is more modular). Writes
``fig10_cross_architecture.{csv,md}`` beside the chart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style
from interbasis.results import atomic_write_text
from interbasis.results.report import pipe_table

STEM = "fig10_cross_architecture"
METRICS = (  # (column, what the reader sees, whether lower is better)
    ("features_required", "features required", True),
    ("edges_required", "edges required", True),
    ("edges_99", "edges_99", True),
    ("modularity", "modularity Q", False),
)
HINTS = {True: "< 1: LIB needs fewer", False: "> 1: LIB more modular"}


def tolerances(runs: pd.DataFrame) -> tuple[str, str]:
    """(k_required delta, edges_required delta) of one experiment's runs: 0.001 where they have
    it (accuracy scores), else the smallest edge delta stored (the cross-entropy tolerance of
    language models), with k_required at that same delta when stored."""
    def stored(prefix: str) -> set[str]:
        return {c[len(prefix):].split("/")[0] for c in runs if c.startswith(prefix)
                and runs[c].notna().any()}

    edge_deltas, k_deltas = stored("ablation/edges_required@"), stored("ablation/k_required@")
    candidates = edge_deltas or k_deltas  # runs without edge ablations: their node deltas
    edge_delta = "0.001" if "0.001" in candidates or not candidates else min(candidates,
                                                                             key=float)
    if edge_delta in k_deltas or not k_deltas:
        return edge_delta, edge_delta
    return min(k_deltas, key=float), edge_delta


def per_run(runs: pd.DataFrame) -> pd.DataFrame:
    """The four metrics of every run (each experiment at its own tolerances)."""
    frames = []
    for _, group in runs.groupby("experiment", sort=False):
        group = group.dropna(axis=1, how="all")
        k_delta, edge_delta = tolerances(group)
        frame = per_run_at(group, k_delta, edge_delta)
        frame["delta"] = k_delta if k_delta == edge_delta else f"{k_delta} / {edge_delta}"
        frames.append(frame)
    return pd.concat(frames).loc[runs.index]


def per_run_at(runs: pd.DataFrame, k_delta: str, edge_delta: str) -> pd.DataFrame:
    k_cols = [c for c in runs if c.startswith(f"ablation/k_required@{k_delta}/")]
    e99_cols = [c for c in runs if c.startswith("sparsity/edges_99/")]
    frame = runs[["experiment", "method", "seed"]].copy()
    frame["model"] = runs["model"] if "model" in runs else runs["experiment"]
    frame["features_required"] = runs[k_cols].mean(axis=1) if k_cols else np.nan
    frame["edges_required"] = runs.get(f"ablation/edges_required@{edge_delta}/total", np.nan)
    # min_count: a run without edges has no edges_99, not 0 of them
    frame["edges_99"] = runs[e99_cols].sum(axis=1, min_count=1) if e99_cols else np.nan
    frame["modularity"] = runs.get("modularity/q", np.nan)
    return frame


def ratio_table(results: Path) -> pd.DataFrame:
    """One row per experiment with LIB and PCA runs: seeds, means and LIB/PCA ratios."""
    runs = data.runs(results)
    if runs.empty or "method" not in runs:
        runs = pd.DataFrame()
    else:
        runs = runs[runs["method"].isin(style.METHODS)]
    rows = []
    if not runs.empty:
        metrics = per_run(runs)
        for experiment, group in metrics.groupby("experiment", sort=True):
            if set(group["method"]) != set(style.METHODS):
                continue
            row = {"experiment": experiment, "model": str(group["model"].iloc[0]),
                   "delta": str(group["delta"].iloc[0])}
            means = group.groupby("method")[[m for m, _, _ in METRICS]].mean()
            for method in style.METHODS:
                row[f"seeds_{method}"] = int((group["method"] == method).sum())
            for column, _, _ in METRICS:
                row[f"{column}_lib"] = means.loc["lib", column]
                row[f"{column}_pca"] = means.loc["pca", column]
                row[f"{column}_ratio"] = means.loc["lib", column] / means.loc["pca", column]
            rows.append(row)
    if not rows:
        raise data.MissingResults(f"no experiment in {results}/runs has complete LIB and PCA "
                                  f"runs; `{data.SWEEP_COMMAND}` writes the paper's")
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown: means per method and the ratio for each metric."""
    header = ["experiment", "model", "seeds (LIB/PCA)", "delta"]
    for _, label, lower in METRICS:
        header.append(f"{label}: LIB / PCA = ratio ({HINTS[lower]})")
    rows = []
    for row in table.itertuples():
        cells = [row.experiment, row.model, f"{row.seeds_lib}/{row.seeds_pca}", row.delta]
        for column, _, _ in METRICS:
            lib, pca, ratio = (getattr(row, f"{column}_{s}") for s in ("lib", "pca", "ratio"))
            cells.append(f"{lib:.3g} / {pca:.3g} = **{ratio:.2f}**")
        rows.append(cells)
    return pipe_table(header, rows) + "\n"


def make(results: Path, out: Path) -> list[Path]:
    table = ratio_table(results)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{STEM}.csv", out / f"{STEM}.md"
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(md_path, "# Figure 10: LIB / PCA ratios across architectures\n\n"
                      "Means over seeds; ratio = LIB / PCA (see "
                      "`src/interbasis/figures/fig10_cross_architecture.py`).\n\n"
                      + markdown(table))

    n_models = len(table)
    width = 0.8 / n_models
    fig, ax = style.figure(figsize=(max(8.0, 1.9 * len(METRICS) + 1.0 * n_models), 4.4))
    palette = ["#444444", "#8c6bb1", "#2a9d8f", "#e76f51", "#a0a0a0"]
    for n, row in enumerate(table.itertuples()):
        ratios = [getattr(row, f"{column}_ratio") for column, _, _ in METRICS]
        x = np.arange(len(METRICS)) + (n - (n_models - 1) / 2) * width
        bars = ax.bar(x, ratios, width=width * 0.9, color=palette[n % len(palette)], alpha=0.85,
                      label=f"{row.experiment} ({row.model}; seeds {row.seeds_lib}/"
                            f"{row.seeds_pca})")
        for bar, value in zip(bars, ratios):
            if np.isfinite(value):
                ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value),
                            xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8.5)
    ax.axhline(1.0, color="0.3", lw=1.0, ls="--", label="LIB = PCA")
    ax.set_xticks(range(len(METRICS)),
                  [f"{label}\n({HINTS[lower]})" for _, label, lower in METRICS], fontsize=9)
    ax.set_ylabel("LIB / PCA (mean over seeds)")
    ax.set_ylim(0, max(1.25, np.nanmax(table[[f"{c}_ratio" for c, _, _ in METRICS]].to_numpy())
                       * 1.15))
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(n_models + 1, 3))
    ax.set_title("LIB / PCA across architectures")
    fig.tight_layout()
    return [*style.save(fig, out, STEM), csv_path, md_path]
