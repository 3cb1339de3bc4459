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

The area under the *edge*-ablation curve is not drawn: the stored edge curves are bisection
probes near one tolerance, and the bounds monotonicity allows between them are up to ~500x apart
(the csv keeps them, columns ``edge_area_*``). Writes ``fig10_cross_architecture.{csv,md}``: the
per-seed values and ratios, and the summary per row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.transforms import blended_transform_factory

from interbasis.figures import data, style
from interbasis.metrics.comparison import (
    Area,
    area_above_curve,
    mean_interval,
    paired_log_ratios,
)
from interbasis.results import atomic_write_text, load_runs
from interbasis.results.report import pipe_table

STEM = "fig10_cross_architecture"
BASELINES = ("pca", "neuron")  # what LIB is compared with, where such runs exist
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
)
# What each experiment is and what the paper claims for that kind of model.
FAMILIES = {
    "modadd_paper": ("modular addition, 1-layer transformer", "paper: LIB sparser"),
    "cifar_paper": ("vision MLP, CIFAR-10", "paper: LIB sparser"),
    "fashion_mlp": ("vision MLP on Fashion-MNIST, standing in for CIFAR-10",
                    "paper (CIFAR-10): LIB sparser"),
    "tiny_gpt": ("2-block character GPT (stand-in for GPT-2 / TinyStories)",
                 "paper (LMs): no real gain"),
    "smollm2_135m": ("SmolLM2-135M, blocks 0-2 of 30, 8 x 32-token windows",
                     "paper (LMs): no real gain"),
    "poly_toy": ("polysemanticity toy (n = 256, m = 512); score: argmax accuracy on the 256 "
                 "one-hot inputs, which a random 26-31-dim subspace keeps (README)",
                 "no paper claim"),
}
UNITS = {True: "accuracy", False: "nats"}
METRIC_NAMES = {  # the markdown's names: what each is and whether it needs a tolerance
    "effective_features": "effective features (no tolerance)",
    "features_required": "features required (tolerance)",
    "edges_required": "edges required (tolerance)",
    "edges_fraction": "edges required / possible (tolerance)",
    "edges_99": "edges_99 (no tolerance)",
    "modularity": "modularity Q (Leiden, resolution 1)",
}


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


def _curve_values(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float, bool]:
    base = float(frame["base_score"].iloc[0])
    x, score = frame["x"].to_numpy(), frame["score"].to_numpy()
    at_zero = score[x == 0]
    higher_is_better = bool(len(at_zero) and at_zero.mean() < base)  # ablating all hurts
    return x, score, base, higher_is_better


def _area(x, score, base_score: float, higher: bool) -> Area:
    """The curve's area, or NaNs when it cannot be normalised (no ablate-all point, no gap)."""
    try:
        return area_above_curve(x, score, base_score, higher)
    except ValueError:
        return Area(math.nan, math.nan, math.nan, int(np.max(x)) if len(x) else 0)


def run_rows(run: pd.Series, k_delta: str, edge_delta: str) -> tuple[list[dict], dict]:
    """The long rows of one run (one per layer or transition and metric) and its score info."""
    curves = data.curves(run["path"])
    rows, info = [], {}
    base = {"experiment": run["experiment"], "method": run["method"], "seed": int(run["seed"])}

    def value(key: str) -> float:
        got = run.get(key, math.nan)
        return float(got) if got is not None and not pd.isna(got) else math.nan

    for layer, curve in curves[curves["kind"] == "node"].groupby("layer", sort=False):
        x, score, base_score, higher = _curve_values(curve)
        info = {"score_name": curve["score_name"].iloc[0], "higher_is_better": higher}
        area = _area(x, score, base_score, higher)
        rows.append({**base, "block": "layer", "row": layer, "metric": "effective_features",
                     "value": area.value, "censored": False})
        k, rank = value(f"ablation/k_required@{k_delta}/{layer}"), value(f"rank/basis/{layer}")
        rows.append({**base, "block": "layer", "row": layer, "metric": "features_required",
                     "value": k, "censored": bool(np.isfinite(k) and np.isfinite(rank)
                                                  and k > rank)})
    possible_total, required_total = 0, 0.0
    edge_curves = curves[curves["kind"] == "edge"]
    for transition in [k.split("/", 2)[2] for k in run.index
                       if k.startswith("sparsity/edges_99/") and pd.notna(run[k])]:
        if transition not in set(edge_curves["layer"]):  # edges without an edge ablation
            rows.append({**base, "block": "transition", "row": transition, "censored": False,
                         "metric": "edges_99",
                         "value": value(f"sparsity/edges_99/{transition}")})
    for transition, curve in curves[curves["kind"] == "edge"].groupby("layer", sort=False):
        x, score, base_score, higher = _curve_values(curve)
        possible = int(x.max())
        required = value(f"ablation/edges_required@{edge_delta}/{transition}")
        area = _area(x, score, base_score, higher)
        common = {**base, "block": "transition", "row": transition, "censored": False}
        rows += [{**common, "metric": "edges_required", "value": required},
                 {**common, "metric": "edges_fraction", "value": required / possible,
                  "possible": possible},
                 {**common, "metric": "edges_99",
                  "value": value(f"sparsity/edges_99/{transition}")},
                 {**common, "metric": "edge_area", "value": area.value,
                  "lower": area.lower, "upper": area.upper}]
        possible_total += possible
        required_total += required
    if possible_total:
        e99 = [r["value"] for r in rows if r["metric"] == "edges_99"]
        total = value(f"ablation/edges_required@{edge_delta}/total")
        common = {**base, "block": "transition", "row": "total", "censored": False}
        rows += [{**common, "metric": "edges_required", "value": total},
                 {**common, "metric": "edges_fraction", "value": total / possible_total,
                  "possible": possible_total},
                 {**common, "metric": "edges_99", "value": float(np.sum(e99))}]
    rows.append({**base, "block": "model", "row": "model", "metric": "modularity",
                 "value": value("modularity/q"), "censored": False})
    return rows, info


def long_table(results: Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Every run's metric values, and per experiment its layers, tolerance and score."""
    runs = load_runs(results / "runs")
    if runs.empty or "method" not in runs:
        runs = pd.DataFrame(columns=["experiment", "method"])
    frames, experiments = [], {}
    order = {name: i for i, name in enumerate(FAMILIES)}
    groups = sorted(runs.groupby("experiment", sort=True), key=lambda g: order.get(g[0], 99))
    for experiment, group in groups:
        methods = set(group["method"])
        if "lib" not in methods or not methods & set(BASELINES):
            continue
        group = group[group["method"].isin(("lib", *BASELINES))].dropna(axis=1, how="all")
        k_delta, edge_delta = tolerances(group)
        rows, info = [], {}
        for _, run in group.iterrows():
            run_long, run_info = run_rows(run, k_delta, edge_delta)
            rows += run_long
            info = info or run_info
        node_layers = data.node_layers(group["path"].iloc[0])
        experiments[experiment] = {
            **info, "k_delta": k_delta, "edge_delta": edge_delta, "node_layers": node_layers,
            "seeds": group.groupby("method")["seed"].nunique().to_dict(),
            "layer_names": style.layer_names(node_layers),
            "transition_names": style.transition_names(node_layers)}
        frames.append(pd.DataFrame(rows))
    if not frames:
        raise data.MissingResults(f"no experiment in {results}/runs has LIB runs and PCA (or "
                                  f"neuron) runs; `{data.SWEEP_COMMAND}` writes the paper's")
    return pd.concat(frames, ignore_index=True), experiments


def ratio_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per-seed log2(LIB / baseline) of every metric, row and baseline present."""
    frames = []
    for baseline in BASELINES:
        if not (long["method"] == baseline).any():
            continue
        for (experiment, metric), group in long.groupby(["experiment", "metric"], sort=False):
            if metric == "edge_area":  # not determined by the stored probes: csv bounds only
                continue
            pairs = paired_log_ratios(group, "value", "lib", baseline, keys=("block", "row"),
                                      censored="censored")
            frames.append(pairs.assign(experiment=experiment, metric=metric, baseline=baseline))
    table = pd.concat(frames, ignore_index=True)
    order = ["experiment", "baseline", "block", "row", "metric", "seed"]
    return table[order + [c for c in table if c not in order]]


def summary_table(ratios: pd.DataFrame) -> pd.DataFrame:
    """One line per experiment, baseline, row and metric: means, geometric-mean ratio, 95% CI."""
    lines = []
    for key, group in ratios.groupby(["experiment", "baseline", "block", "row", "metric"],
                                     sort=False):
        mean, low, high = mean_interval(group["log2_ratio"])
        statuses = sorted(set(group["status"]))
        lines.append(dict(zip(["experiment", "baseline", "block", "row", "metric"], key),
                          seeds=len(group), lib=group["value_method"].mean(),
                          base=group["value_baseline"].mean(), ratio=2 ** mean,
                          ratio_low=2 ** low, ratio_high=2 ** high, status=", ".join(statuses)))
    return pd.DataFrame(lines)


def markdown(summary: pd.DataFrame, experiments: dict[str, dict]) -> str:
    header = ["experiment", "vs", "row", "metric", "seeds", "LIB mean", "baseline mean",
              "LIB / baseline (geometric mean of seeds) [95% CI]", "status"]
    rows = []
    for line in summary.itertuples():
        info = experiments[line.experiment]
        names = {**info["layer_names"], **info["transition_names"], "model": "whole model"}
        interval = ("" if not np.isfinite(line.ratio_low)
                    else f" [{line.ratio_low:.2f}, {line.ratio_high:.2f}]")
        ratio = f"**{line.ratio:.2f}**{interval}" if np.isfinite(line.ratio) else "-"
        rows.append([line.experiment, line.baseline, names.get(line.row, line.row),
                     METRIC_NAMES.get(line.metric, line.metric),
                     str(line.seeds), f"{line.lib:.4g}", f"{line.base:.4g}", ratio,
                     line.status])
    return pipe_table(header, rows) + "\n"


def _layout(experiments: dict[str, dict], long: pd.DataFrame) -> list[tuple]:
    """(y, kind, experiment, layer row or None, transition row or None), top to bottom."""
    slots, y = [], 0
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


def _draw_cell(ax, y: float, cell: pd.DataFrame, offset: float, color: str, marker: str
               ) -> None:
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
        ax.annotate("censored: both need rank + 1 (tolerance never reached)", (0.5, y),
                    xycoords=("axes fraction", "data"), ha="center", va="center", fontsize=7,
                    color="0.35", style="italic")
    elif len(cell) and (cell["value_method"] == cell["value_baseline"]).all() and \
            cell["metric"].iloc[0] == "effective_features":
        ax.annotate("same curve: LIB = PCA here", (2 ** 0.15, y), ha="left", va="center",
                    fontsize=7, color="0.35", style="italic")


def _edge_areas(long: pd.DataFrame) -> pd.DataFrame:
    """Per seed and transition, both methods' edge-curve areas with their monotone bounds."""
    area = long[long["metric"] == "edge_area"]
    columns = ["experiment", "seed", "row", "value", "lower", "upper"]

    def named(frame: pd.DataFrame, side: str) -> pd.DataFrame:
        return frame[columns].rename(columns={"value": f"edge_area_{side}",
                                              "lower": f"edge_area_{side}_lower",
                                              "upper": f"edge_area_{side}_upper"})
    lib = named(area[area["method"] == "lib"], "lib")
    others = pd.concat([named(area[area["method"] == b], "baseline").assign(baseline=b)
                        for b in BASELINES])
    return lib.merge(others, on=["experiment", "seed", "row"])


def make(results: Path, out: Path) -> list[Path]:
    long, experiments = long_table(results)
    ratios = ratio_table(long)
    summary = summary_table(ratios)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{STEM}.csv", out / f"{STEM}.md"
    table = ratios.merge(_edge_areas(long), on=["experiment", "baseline", "seed", "row"],
                         how="left")
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(md_path, "# Figure 10: LIB against PCA (and neurons) across "
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
        values = 2 ** ratios[ratios["metric"] == metric]["log2_ratio"].dropna()
        low = min(0.5, values.min() / 1.4) if len(values) else 0.5
        high = max(2.0, values.max() * 1.4) if len(values) else 2.0
        if not free and metric != "edges_fraction":
            high *= 6  # room on the right for the mean counts
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
                _draw_cell(ax, y, cell, offsets[baseline], style.method_color(baseline),
                           style.method_marker(baseline))
            if not free and metric != "edges_fraction":
                _count_label(ax, y, counts, (experiment, block, row, metric))
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
    note = ("" if "neuron" in baselines else
            "no neuron-basis runs stored; a random-rotation baseline needs new runs")
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.03, 1.0), ncol=1,
               fontsize=8.5, title=note, title_fontsize=8, alignment="left")
    fig.text(0.035, -0.01, caption(ratios, experiments), ha="left", va="top", fontsize=8.5,
             wrap=True)
    fig.suptitle("LIB against PCA across architectures: per-seed ratios (left of 1: LIB needs "
                 "fewer features or edges)\nno-tolerance metrics beside the counts at each "
                 "family's own tolerance; \u25b6/\u25c0: one side censored (a bound)",
                 fontsize=10.5, y=1.0, x=0.62)
    return style.save(fig, out, STEM)


def caption(ratios: pd.DataFrame, experiments: dict[str, dict]) -> str:
    """What the rows add up to, per experiment: total edges and mean effective features."""
    def geo(frame: pd.DataFrame) -> float:
        values = frame[frame["status"] == "ok"]["log2_ratio"].dropna()
        return 2 ** values.mean() if len(values) else math.nan

    parts = []
    pca = ratios[ratios["baseline"] == "pca"]
    for experiment in experiments:
        mine = pca[pca["experiment"] == experiment]
        edges = geo(mine[(mine["metric"] == "edges_required") & (mine["row"] == "total")])
        features = geo(mine[mine["metric"] == "effective_features"])
        claim = FAMILIES.get(experiment, ("", "no paper claim"))[1]
        edge_text = f"edges {edges:.2f}" if np.isfinite(edges) else "no edges"
        parts.append(f"{experiment} {edge_text}, effective features {features:.2f} ({claim})")
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
    verdict = (f"LIB needs fewer edges in total, 95% interval below 1: {', '.join(fewer) or 'none'}"
               + (f"; not established: {', '.join(unclear)}" if unclear else "") + "."
               + (f" Against the paper, whose LMs showed no real gain, so does {', '.join(no_gain)}"
                  "." if no_gain else ""))
    return ("LIB / PCA, geometric means over seeds (total edges at the family's tolerance; "
            "effective features over layers): " + "; ".join(parts) + ".\n" + verdict)


def _ratio_formatter():
    from matplotlib.ticker import FuncFormatter

    def text(value, _):
        if value >= 1:
            return f"{value:g}"
        return f"1/{1 / value:g}"
    return FuncFormatter(text)


def _count_label(ax, y: float, counts: pd.DataFrame, key: tuple) -> None:
    """Mean counts "LIB / PCA" at the right edge of a count panel (none for censored cells)."""
    if key not in counts.index:
        return
    cell = counts.loc[[key]].set_index("method")
    if "lib" not in cell.index or "pca" not in cell.index or cell["censored"].all():
        return
    ax.annotate(f"{cell.loc['lib', 'value']:.0f} / {cell.loc['pca', 'value']:.0f}", (1.0, y),
                xycoords=("axes fraction", "data"), xytext=(-2, 0), textcoords="offset points",
                ha="right", va="center", fontsize=6.5, color="0.35")


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
        seeds = "/".join(str(info["seeds"].get(m, 0)) for m in ("lib", *BASELINES)
                         if m in info["seeds"])
        tolerance = f"tolerance {info['k_delta']} {UNITS[info['higher_is_better']]}"
        if info["edge_delta"] != info["k_delta"]:
            tolerance += f" (edges {info['edge_delta']})"
        fig = axes[0].figure
        where = blended_transform_factory(fig.transFigure, axes[0].transData)
        fig.text(0.035, y, f"{experiment}: {what}; seeds (LIB/{'/'.join(BASELINES[:1])}) "
                 f"{seeds}; {tolerance}; {claim}", transform=where, ha="left", va="center",
                 fontsize=8.5, fontweight="bold", zorder=5)
