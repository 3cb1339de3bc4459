"""Figure 9: incidental polysemanticity, polysemantic neurons vs m (log-log), and over training.

Left: every toy instance (dots) and the mean per m (with its standard error) against the paper's
prediction n^2 / (4 m), and a least-squares line through log10(count) vs log10(m) of the
instances with a non-zero count (the slope and its standard error are in the legend; instances
with no polysemantic neuron cannot enter a log fit and are counted in the title). Right: the
count over training, mean over instances per m. Colours: one per m (viridis), the same in both
panels; the title says how much of the paper's grid (16 widths x 16 instances) the runs cover.
Reads ``summary.json``, ``config.yaml`` (n, m, lambda) and ``toy_training.csv`` of every run of
the toy experiment; the fit also goes to ``fig09_polysemanticity.csv``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import yaml
from matplotlib import ticker

from interbasis.figures import data, style

STEM = "fig09_polysemanticity"
EXPERIMENT = "poly_paper"
COMMAND = "python -m interbasis.run -m sweep=paper_poly"
COUNT = "toy/polysemantic_neurons"


def toy_runs(results: Path, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Complete toy runs with their n, m and lambda (from each run's config)."""
    runs = data.runs(results)
    if not runs.empty:
        runs = runs[runs["experiment"] == experiment]
    if runs.empty or COUNT not in runs or runs[COUNT].isna().all():
        raise data.MissingResults(f"no complete toy runs in {results}/runs/{experiment}/; "
                                  f"`{COMMAND}` writes them")
    runs = runs.dropna(subset=[COUNT]).reset_index(drop=True)
    configs = [yaml.safe_load((Path(path) / "config.yaml").read_text(encoding="utf-8"))
               for path in runs["path"]]
    runs["n"] = [cfg["model"]["n"] for cfg in configs]
    runs["m"] = [cfg["model"]["m"] for cfg in configs]
    runs["l1_lambda"] = [cfg["train"]["l1_lambda"] for cfg in configs]
    return runs


def loglog_fit(m: np.ndarray, count: np.ndarray) -> tuple[float, float, float]:
    """(slope, its standard error, intercept) of log10(count) = a + b log10(m), count > 0."""
    keep = count > 0
    x, y = np.log10(m[keep].astype(float)), np.log10(count[keep].astype(float))
    if len(np.unique(x)) < 2:
        raise data.MissingResults(f"the toy runs cover {len(np.unique(x))} value(s) of m with a "
                                  f"non-zero count; a slope needs two; `{COMMAND}` adds them")
    X = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    residual = y - X @ coef
    dof = max(len(x) - 2, 1)
    covariance = residual @ residual / dof * np.linalg.inv(X.T @ X)
    return float(coef[1]), float(np.sqrt(covariance[1, 1])), float(coef[0])


# The paper's grid (its section on incidental polysemanticity): n = 256, m = 256, 512, ..., 4096
# (16 values) x 16 instances; the title says how much of it the stored runs cover.
PAPER_M_VALUES, PAPER_INSTANCES = 16, 16


def m_colors(m_values) -> dict[int, tuple]:
    """One colour per m, dark (small m) to light green-yellow (large m): viridis up to 0.85, so
    the lightest stays readable on white."""
    values = sorted(set(int(m) for m in m_values))
    cmap = matplotlib.colormaps["viridis"]
    return {m: cmap(x) for m, x in zip(values, np.linspace(0.0, 0.85, len(values)))}


MAX_LABELLED = 6  # more widths than this: ticks at powers of 2 and a colour bar, not a legend


def _width_colorbar(fig, ax, colors: dict[int, tuple]) -> None:
    """A discrete colour bar of the widths m (one band per stored width) beside ``ax``."""
    widths = sorted(colors)
    cmap = matplotlib.colors.ListedColormap([colors[m] for m in widths])
    norm = matplotlib.colors.BoundaryNorm(np.arange(len(widths) + 1) - 0.5, len(widths))
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02,
                       fraction=0.05)
    every = max(1, len(widths) // 8)
    bar.set_ticks(range(0, len(widths), every), labels=[str(m) for m in widths[::every]])
    bar.ax.tick_params(labelsize=7.5)
    bar.set_label("hidden neurons m", fontsize=8.5)


def make(results: Path, out: Path, experiment: str = EXPERIMENT) -> list[Path]:
    runs = toy_runs(results, experiment)
    fig, (ax, ax_train) = style.figure(1, 2, figsize=(10.5, 4.4))
    groups = list(runs.groupby(["n", "l1_lambda"]))
    colors = m_colors(runs["m"])
    markers = ["o", "s", "^", "D"]
    rows = []
    for g, ((n, l1_lambda), group) in enumerate(groups):
        marker = markers[g % len(markers)]
        tag = f"n={n}, \u03bb={l1_lambda:g}" if len(groups) > 1 else f"n={n}"
        m, count = group["m"].to_numpy(), group[COUNT].to_numpy()
        jitter = 10 ** np.random.default_rng(0).uniform(-0.02, 0.02, len(m))
        ax.scatter(m * jitter, np.maximum(count, 0.5), s=16, c=[colors[int(v)] for v in m],
                   marker=marker, alpha=0.8, lw=0, zorder=3)
        per_m = group.groupby("m")[COUNT].agg(["mean", "sem", "count"]).reset_index()
        ax.errorbar(per_m["m"], per_m["mean"], yerr=per_m["sem"].fillna(0), fmt=marker,
                    mfc="white", mec="black", ecolor="black", ms=6, capsize=3, zorder=4,
                    label=f"{tag}: mean \u00b1 s.e. over instances (colour dots: instances)")
        grid = np.geomspace(m.min(), m.max(), 50)
        ax.plot(grid, n * n / (4 * grid), color="0.45", ls="--", lw=1.2,
                label=f"paper's prediction n\u00b2/(4m), n={n} (slope \u22121)")
        slope, slope_se, intercept = loglog_fit(m, count)
        ax.plot(grid, 10 ** intercept * grid ** slope, color="black", lw=1.3,
                label=f"least-squares fit: slope {slope:.2f} \u00b1 {slope_se:.2f} (s.e.)")
        dropped = int((count <= 0).sum())
        rows.append({"n": n, "l1_lambda": l1_lambda, "slope": slope, "slope_se": slope_se,
                     "intercept": intercept, "instances": len(count),
                     "zero_count_instances": dropped, "m_values": len(per_m)})
        for step_m, curve in _training_means(group).groupby("m"):
            ax_train.plot(curve["step"], curve["polysemantic_neurons"],
                          color=colors[int(step_m)], lw=1.6,
                          ls="-" if g == 0 else "--", label=f"m = {step_m}" if g == 0 else None)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    # plain numbers: the reader compares counts and neuron numbers, not powers of ten
    widths = sorted(int(m) for m in runs["m"].unique())
    ticks = widths if len(widths) <= MAX_LABELLED else [m for m in widths if m & (m - 1) == 0]
    ax.set_xticks(ticks, [str(m) for m in ticks])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("hidden neurons m")
    ax.set_ylabel("polysemantic neurons at the end of training")
    counts = runs.groupby("m").size()
    zero = int((runs[COUNT] <= 0).sum())
    per = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    ax.set_title(f"{len(runs)} trained toys: {runs['m'].nunique()} widths m \u00d7 {per} "
                 f"instances each" + (f"\n({zero} with no polysemantic neuron: drawn at 0.5, "
                                      "left out of the fit)" if zero else ""), fontsize=9.5)
    ax.legend(loc="lower left", fontsize=7.5)
    ax_train.set_xlabel("training step")
    ax_train.set_ylabel("polysemantic neurons (mean over instances)")
    ax_train.set_title("the same counts during training", fontsize=9.5)
    if len(widths) <= MAX_LABELLED:
        ax_train.legend(loc="upper left", fontsize=8, ncol=2)
    else:  # sixteen widths: a colour bar with a mark per width instead of a long legend
        _width_colorbar(fig, ax_train, colors)
    fig.suptitle(f"How many hidden neurons are polysemantic, as the hidden layer widens "
                 f"(toy ReLU(x W W\u1d40), one-hot inputs, L1 penalty)\nstored runs: "
                 f"{runs['m'].nunique()} of the paper's {PAPER_M_VALUES} widths, up to "
                 f"{counts.max()} of its {PAPER_INSTANCES} instances per width", fontsize=10.5)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    table = out / f"{STEM}.csv"
    pd.DataFrame(rows).to_csv(table, index=False, float_format="%.6g")
    return [*style.save(fig, out, STEM), table]


def _training_means(group: pd.DataFrame) -> pd.DataFrame:
    """Polysemantic count per (m, step), mean over the group's instances with a training table."""
    frames = []
    for path, m in zip(group["path"], group["m"], strict=True):
        table = Path(path) / "toy_training.csv"
        if table.is_file():
            frames.append(pd.read_csv(table).assign(m=m))
    if not frames:
        return pd.DataFrame(columns=["m", "step", "polysemantic_neurons"])
    joined = pd.concat(frames, ignore_index=True)
    return joined.groupby(["m", "step"], as_index=False)["polysemantic_neurons"].mean()
