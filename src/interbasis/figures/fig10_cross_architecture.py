"""Figure 10: LIB against PCA (and neurons) across architectures, as a per-seed forest plot.

One block of rows per experiment that holds LIB runs and runs of a baseline (PCA; neurons when
their runs exist); within a block, one row per node layer (left two panels) and per transition
plus the total (right three panels). Each dot is one seed's log-ratio LIB / baseline, pairing the
runs of the same seed (the same trained model); the bar is the mean log-ratio with its 95% t
interval; the x axis is logarithmic, so 1/2 and 2 are equally far from "no difference".

The metrics, per run:

- effective features (no tolerance): the area above the node-ablation curve normalised to its own
  ablation gap (``metrics.comparison.area_above_curve`` on ``curves.csv``), i.e. how many
  features' worth of the gap is lost, summed over k; a step at k* gives k*;
- features required: ``ablation/k_required@<tol>`` at the family's tolerance (stated in the block
  header); a value above the layer's basis rank means the tolerance was never reached and is
  drawn as censored, not as a ratio;
- edges required: ``ablation/edges_required@<tol>`` (count) and the same as a share of the
  transition's possible non-constant edges (the last point of the edge bisection in
  ``curves.csv``);
- edges_99 (no tolerance): ``sparsity/edges_99``, the edges holding 99% of the edge weight.

- edge-ablation area (no tolerance): ``ablation/edge_area`` (metrics/comparison.py: edge_area),
  the area above the edge-ablation curve normalised to its own gap, over the share of possible
  edges kept (1 - the area under the curve): a jump from "all lost" to "all kept" at the share f*
  gives f*. Only runs that scored every halving of the edges kept (``ablation.edge_curve``, or
  ``python -m interbasis.metrics.edge_curve`` for older runs) have it; a plain bisection's probes
  bound it only loosely (the csv keeps those bounds, columns ``edge_area_*``).

Baselines: PCA, the neuron basis and ``random`` (PCA's kept subspace in a seeded Haar-random
orthonormal basis, basis/bases.py: random_basis), each where its runs exist.

Writes ``fig10_cross_architecture.{csv,md}``: the per-seed values and ratios, and the summary per
row. The tables are built in ``fig10_tables``;
this module draws them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.transforms import blended_transform_factory

from interbasis.figures import style
from interbasis.figures.fig10_tables import (
    BASELINES,
    FAMILIES,
    UNITS,
    edge_areas,
    long_table,
    markdown,
    ratio_table,
    summary_table,
)
from interbasis.metrics.comparison import mean_interval
from interbasis.results import atomic_write_text

STEM = "fig10_cross_architecture"
LAYER_METRICS = (
    ("effective_features", "effective features\n(area above node-ablation curve)", True),
    ("features_required", "features required\n(at the block's tolerance;\nright: LIB / PCA means)",
     False),
)
TRANSITION_METRICS = (
    ("edges_required", "edges required\n(at the block's tolerance;\nright: LIB / PCA means)",
     False),
    ("edges_fraction", "edges required as a share\nof possible edges", False),
    ("edges_99", "edges holding 99%\nof the edge weight", True),
    ("edge_area", "edge-ablation area, each basis\n(share of possible edges lost\nover "
     "the curve: 1 \u2212 AUC)", True),
)
# Panels drawn as each method's own value (comparable across families), not as a ratio.
ABSOLUTE_METRICS = ("edge_area",)
COUNT_FONT = 6.5  # the mean counts at the right of the count panels



def _layout(experiments: dict[str, dict], long: pd.DataFrame) -> list[tuple]:
    """(y, kind, experiment, layer row or None, transition row or None), top to bottom."""
    slots: list[tuple] = []
    y: float = 0
    for experiment in experiments:
        slots.append((y, "header", experiment, None, None))
        y += 1
        mine = long[long["experiment"] == experiment]
        layers = list(dict.fromkeys(mine[mine["block"] == "layer"]["row"]))
        transitions = list(dict.fromkeys(mine[mine["block"] == "transition"]["row"]))
        if not transitions:
            transitions = ["(none stored)"]
        if not (mine["metric"] == "edges_required").any():
            transitions = [*transitions, "(no edge ablation)"]
        for i in range(max(len(layers), len(transitions))):
            slots.append((y, "row", experiment, layers[i] if i < len(layers) else None,
                          transitions[i] if i < len(transitions) else None))
            y += 1
        y += 0.4
    return slots


def _draw_cell(ax, y: float, cell: pd.DataFrame, offset: float, baseline: str) -> None:
    color, marker = style.method_color(baseline), style.method_marker(baseline)
    ok = cell[cell["status"] != "both censored"]
    ratios = 2 ** ok["log2_ratio"].to_numpy(dtype=float)
    finite = np.isfinite(ratios)
    # seeds as open markers just above the row, the mean and its interval on it
    ax.scatter(ratios[finite], np.full(finite.sum(), y + offset - 0.22), s=22,
               facecolors="white", edgecolors=color, marker=marker, lw=1.0, zorder=3)
    for status, arrow in (("method censored", "\u25b6"), ("baseline censored", "\u25c0")):
        bounded = ok[ok["status"] == status]
        for ratio in 2 ** bounded["log2_ratio"].to_numpy(dtype=float):
            ax.annotate(arrow, (ratio, y + offset - 0.22), ha="center", va="center", fontsize=7,
                        color=color)
    mean, low, high = mean_interval(ok[ok["status"] == "ok"]["log2_ratio"])
    if np.isfinite(low):
        ax.plot([2 ** low, 2 ** high], [y + offset] * 2, color=color, lw=1.6, zorder=2)
    if np.isfinite(mean):
        ax.plot([2 ** mean] * 2, [y + offset - 0.2, y + offset + 0.25], color=color, lw=2.4,
                zorder=4)
    if len(cell) and (cell["status"] == "both censored").all():
        ax.annotate("censored: both need rank + 1", (0.5, y + offset),
                    xycoords=("axes fraction", "data"), ha="center", va="center", fontsize=6.5,
                    color="0.35", style="italic", linespacing=0.9)
    elif len(cell) and (cell["value_method"] == cell["value_baseline"]).all() and \
            cell["metric"].iloc[0] == "effective_features":
        ax.annotate(f"LIB = {style.method_label(baseline)}", (2 ** 0.15, y + offset),
                    ha="left", va="center", fontsize=6.5, color="0.35", style="italic")


def make(results: Path, out: Path) -> list[Path]:
    long, experiments = long_table(results)
    ratios = ratio_table(long)
    summary = summary_table(ratios)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{STEM}.csv", out / f"{STEM}.md"
    table = ratios.merge(edge_areas(long), on=["experiment", "baseline", "seed", "row"],
                         how="left")
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(md_path, "# Figure 10: LIB against PCA, neurons and a random rotation across "
                      "architectures\n\nPer-seed ratios LIB / baseline paired by seed; the "
                      "ratio shown is the geometric mean over seeds with its 95% t interval "
                      "(see `src/interbasis/figures/fig10_cross_architecture.py`). Tolerances "
                      "per experiment: " + "; ".join(
                          f"{e} {i['k_delta']} {UNITS[i['higher_is_better']]}"
                          for e, i in experiments.items()) + ".\n\n"
                      + markdown(summary, experiments))
    return [*draw(long, ratios, experiments, out), csv_path, md_path]


def draw(long: pd.DataFrame, ratios: pd.DataFrame, experiments: dict[str, dict], out: Path
         ) -> list[Path]:
    slots = _layout(experiments, long)
    height = slots[-1][0] + 1
    panels = [(m, label, "layer", free) for m, label, free in LAYER_METRICS] + \
             [(m, label, "transition", free) for m, label, free in TRANSITION_METRICS]
    n_layer = len(LAYER_METRICS)
    ratios_w = [1.0] * n_layer + [0.62] + [1.0] * len(TRANSITION_METRICS)  # room for names
    fig, grid = style.figure(1, len(panels) + 1, figsize=(3.0 * len(panels) + 4.2,
                                                          0.27 * height + 2.4),
                             sharey=True, squeeze=False,
                             gridspec_kw={"wspace": 0.06, "width_ratios": ratios_w})
    grid[0, n_layer].axis("off")
    axes = [ax for i, ax in enumerate(grid[0]) if i != n_layer]
    baselines = [b for b in BASELINES if (ratios["baseline"] == b).any()]
    offsets = {b: (i - (len(baselines) - 1) / 2) * 0.3 for i, b in enumerate(baselines)}
    cells = dict(iter(ratios.groupby(["experiment", "metric", "row", "baseline"], sort=False)))
    empty = ratios.iloc[:0]
    counts = long.groupby(["experiment", "block", "row", "metric", "method"]).agg(
        value=("value", "mean"), censored=("censored", "all")).reset_index(
        "method").sort_index()
    for ax, (metric, label, block, free) in zip(axes, panels):
        if metric in ABSOLUTE_METRICS:
            _absolute_panel(ax, long, metric, slots, label)
            continue
        values = 2 ** ratios[ratios["metric"] == metric]["log2_ratio"].dropna()
        low = min(0.5, values.min() / 1.4) if len(values) else 0.5
        high = max(2.0, values.max() * 1.4) if len(values) else 2.0
        labelled = not free and metric != "edges_fraction"
        texts = {y: _count_text(counts, (experiment, block, layer if block == "layer"
                                         else transition, metric))
                 for y, kind, experiment, layer, transition in slots
                 if labelled and kind != "header"}
        high = _room_for_counts(ax, low, high, [t for t in texts.values() if t])
        for y, kind, experiment, layer, transition in slots:
            if kind == "header":
                continue
            row = layer if block == "layer" else transition
            if row is None:
                continue
            if row in ("(none stored)", "(no edge ablation)"):
                if metric != "edges_99" or row == "(none stored)":
                    ax.annotate("no edge ablation stored", (0.5, y), ha="center", va="center",
                                xycoords=("axes fraction", "data"), fontsize=7, color="0.35",
                                style="italic")
                continue
            for baseline in baselines:
                cell = cells.get((experiment, metric, row, baseline), empty)
                _draw_cell(ax, y, cell, offsets[baseline], baseline)
            if labelled:
                _count_label(ax, y, texts.get(y))
        ax.set_xscale("log", base=2)
        ax.set_xlim(low, high)
        ax.axvline(1.0, color="0.3", lw=0.9, ls="--", zorder=1)
        ax.xaxis.set_major_formatter(_ratio_formatter())
        ax.set_title(label + ("\nno tolerance" if free else ""), fontsize=9)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("LIB / baseline (log scale)", fontsize=8.5)
        ax.tick_params(axis="x", labelsize=8)
    for y, kind, *_ in slots:
        if kind == "header":
            for ax in axes:
                ax.axhspan(y - 0.5, y + 0.5, color="0.93", zorder=0, lw=0)
    _row_labels(axes, slots, experiments)
    axes[0].set_ylim(height - 0.3, -0.7)
    handles = [axes[0].scatter([], [], color=style.method_color(b), marker=style.method_marker(b),
                               s=22, facecolors="white", edgecolors=style.method_color(b),
                               label=f"LIB / {style.method_label(b)}: open marker per seed "
                                     "(paired by seed); tick: mean, line: its 95% interval")
               for b in baselines]
    handles.append(axes[0].scatter([], [], marker=style.method_marker("lib"), s=22,
                                   facecolors="white", edgecolors=style.method_color("lib"),
                                   label="LIB's own value (last panel; there every marker is "
                                         "its basis's own value)"))
    note = ("random rotation: PCA's kept subspace in a seeded Haar-random orthonormal basis "
            "(what 'no structure' gives)" if "random" in baselines else
            "no random-rotation runs stored")
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.005, 0.975), ncol=1,
               fontsize=8.5, title=note, title_fontsize=8, alignment="left")
    fig.text(0.035, -0.01, caption(ratios, experiments), ha="left", va="top", fontsize=8.5,
             wrap=True)
    fig.suptitle("LIB against PCA, neurons and a random rotation, across architectures: "
                 "per-seed ratios LIB / baseline (left of 1: LIB needs fewer features or edges)"
                 "\nno-tolerance metrics beside the counts at each family's own tolerance; "
                 "\u25b6/\u25c0: one side censored (a bound); last panel: each basis's own "
                 "value, not a ratio",
                 fontsize=10.5, y=1.02, x=0.62)
    return style.save(fig, out, STEM)


def _absolute_panel(ax, long: pd.DataFrame, metric: str, slots: list[tuple], label: str
                    ) -> None:
    """Each method's own value per seed (open markers) and its mean (tick), on a log axis."""
    mine = long[long["metric"] == metric].dropna(subset=["value"])
    methods = [m for m in ("lib", *BASELINES) if (mine["method"] == m).any()]
    offsets = {m: (i - (len(methods) - 1) / 2) * 0.22 for i, m in enumerate(methods)}
    for y, kind, experiment, _, transition in slots:
        if kind == "header" or transition is None or transition.startswith("("):
            continue
        cell = mine[(mine["experiment"] == experiment) & (mine["row"] == transition)]
        if cell.empty:
            ax.annotate("not stored (older runs)", (0.5, y), xycoords=("axes fraction", "data"),
                        ha="center", va="center", fontsize=6.5, color="0.35", style="italic")
            continue
        for method in methods:
            values = cell[cell["method"] == method]["value"].to_numpy(dtype=float)
            values = values[values > 0]
            if not len(values):
                continue
            color = style.method_color(method)
            at = y + offsets[method]
            ax.scatter(values, np.full(len(values), at), s=16, facecolors="white",
                       edgecolors=color, marker=style.method_marker(method), lw=0.9, zorder=3)
            mean = float(np.exp(np.log(values).mean()))
            ax.plot([mean] * 2, [at - 0.12, at + 0.12], color=color, lw=2.2, zorder=4)
    values = mine["value"].to_numpy(dtype=float)
    values = values[values > 0]
    ax.set_xscale("log")
    ax.set_xlim((values.min() / 2) if len(values) else 1e-4, 1.0)
    ax.set_title(label + "\nno tolerance; geometric mean tick", fontsize=9)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("share of possible edges (log scale)", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=8)


def caption(ratios: pd.DataFrame, experiments: dict[str, dict]) -> str:
    """What the rows add up to, per experiment and baseline: total edges at the family's
    tolerance, the tolerance-free edge area (total) and the mean effective features."""
    def geo(frame: pd.DataFrame) -> float:
        values = frame[frame["status"] == "ok"]["log2_ratio"].dropna()
        return 2 ** values.mean() if len(values) else math.nan

    def numbers(mine: pd.DataFrame) -> str:
        total = mine[mine["row"] == "total"]
        edges = geo(total[total["metric"] == "edges_required"])
        area = geo(total[total["metric"] == "edge_area"])
        features = geo(mine[mine["metric"] == "effective_features"])
        parts = [f"edges {edges:.2f}" if np.isfinite(edges) else "no edges"]
        if np.isfinite(area):
            parts.append(f"edge area {area:.2f}")
        parts.append(f"effective features {features:.2f}")
        return ", ".join(parts)

    lines = []
    for baseline in [b for b in BASELINES if (ratios["baseline"] == b).any()]:
        chosen = ratios[ratios["baseline"] == baseline]
        parts = []
        for experiment in experiments:
            mine = chosen[chosen["experiment"] == experiment]
            if mine.empty:
                continue
            claim = FAMILIES.get(experiment, ("", "no paper claim"))[1]
            parts.append(f"{experiment} {numbers(mine)}"
                         + (f" ({claim})" if baseline == "pca" else ""))
        lines.append(f"LIB / {style.method_label(baseline)}, geometric means over seeds (total "
                     "edges at the family's tolerance, total edge area, effective features "
                     "over layers): " + "; ".join(parts) + ".")
    pca = ratios[ratios["baseline"] == "pca"]
    fewer, unclear = [], []
    for experiment in experiments:
        total = pca[(pca["experiment"] == experiment) & (pca["metric"] == "edges_required")
                    & (pca["row"] == "total") & (pca["status"] == "ok")]["log2_ratio"]
        mean, low, high = mean_interval(total)
        if np.isfinite(high) and high < 0:
            fewer.append(experiment)
        elif np.isfinite(mean):
            unclear.append(experiment + (" (one seed)" if not np.isfinite(high) else ""))
    no_gain = [e for e in fewer if "no real gain" in FAMILIES.get(e, ("", ""))[1]]
    lines.append(f"LIB needs fewer edges than PCA in total, 95% interval below 1: "
                 f"{', '.join(fewer) or 'none'}"
                 + (f"; not established: {', '.join(unclear)}" if unclear else "") + "."
                 + (f" Against the paper, whose LMs showed no real gain, so does "
                    f"{', '.join(no_gain)}." if no_gain else ""))
    return "\n".join(lines)


def _ratio_formatter():
    from matplotlib.ticker import FuncFormatter

    def text(value, _):
        if value >= 1:
            return f"{value:g}"
        return f"1/{1 / value:g}"
    return FuncFormatter(text)


def _count_text(counts: pd.DataFrame, key: tuple) -> str | None:
    """Mean counts "LIB / PCA" of a count panel's row (None for censored or missing cells)."""
    if key not in counts.index:
        return None
    cell = counts.loc[[key]].set_index("method")
    if "lib" not in cell.index or "pca" not in cell.index or cell["censored"].all():
        return None
    return f"{cell.loc['lib', 'value']:.0f} / {cell.loc['pca', 'value']:.0f}"


def _count_label(ax, y: float, text: str | None) -> None:
    """The row's mean counts at the right edge of a count panel."""
    if text is not None:
        ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), xytext=(-2, 0),
                    textcoords="offset points", ha="right", va="center",
                    fontsize=COUNT_FONT, color="0.35")


def _room_for_counts(ax, low: float, high: float, texts: list[str]) -> float:
    """The upper x limit (log axis) that leaves the longest count label its own strip on the
    right of the panel, clear of the markers (six-digit LM counts overlapped them)."""
    if not texts:
        return high
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font = FontProperties(size=COUNT_FONT)
    text_pt = max(TextToPath().get_text_width_height_descent(t, font, ismath=False)[0]
                  for t in texts)
    width_pt = ax.get_position().width * ax.figure.get_figwidth() * 72
    share = min(0.5, (text_pt + 8) / width_pt)  # the label, its 2 pt offset and a gap
    return high * (high / low) ** (share / (1 - share))


def _row_labels(axes, slots: list[tuple], experiments: dict[str, dict]) -> None:
    ticks, labels = [], []
    for y, kind, experiment, layer, _ in slots:
        if kind == "header":
            continue
        ticks.append(y)
        labels.append(experiments[experiment]["layer_names"].get(layer, layer) if layer else "")
    axes[0].set_yticks(ticks, labels, fontsize=8)
    third = axes[len(LAYER_METRICS)]
    for y, kind, experiment, _, transition in slots:
        if kind == "row" and transition and not transition.startswith("("):
            name = experiments[experiment]["transition_names"].get(transition, transition)
            third.annotate(name, (0.0, y), xycoords=("axes fraction", "data"), xytext=(-3, 0),
                           textcoords="offset points", ha="right", va="center", fontsize=8)
    for y, kind, experiment, *_ in slots:
        if kind != "header":
            continue
        info = experiments[experiment]
        what, claim = FAMILIES.get(experiment, (experiment, "no paper claim"))
        present = [m for m in ("lib", *BASELINES) if m in info["seeds"]]
        seeds = "/".join(str(info["seeds"][m]) for m in present)
        names = "/".join(style.method_label(m) if m != "random" else "random" for m in present)
        tolerance = f"tolerance {info['k_delta']} {UNITS[info['higher_is_better']]}"
        if info["edge_delta"] != info["k_delta"]:
            tolerance += f" (edges {info['edge_delta']})"
        fig = axes[0].figure
        where = blended_transform_factory(fig.transFigure, axes[0].transData)
        fig.text(0.035, y, f"{experiment}: {what}; seeds ({names}) {seeds}; "
                 f"{tolerance}; {claim}", transform=where, ha="left", va="center",
                 fontsize=8.5, fontweight="bold", zorder=5)
