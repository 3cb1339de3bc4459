"""The tables behind figure 10: per-run metric values, per-seed LIB / baseline ratios, summaries.

Reads the results store only (``summary.json``, ``curves.csv``, ``config.yaml`` of every run); the
metric definitions are in ``fig10_cross_architecture``'s docstring, the pure functions in
``interbasis.metrics.comparison``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from interbasis.figures import data, style
from interbasis.metrics.comparison import (
    Area,
    area_above_curve,
    mean_interval,
    paired_log_ratios,
)
from interbasis.results.report import pipe_table

# what LIB is compared with, where such runs exist; random: PCA's subspace, Haar-rotated
BASELINES = ("pca", "neuron", "random")
# What each experiment is and what the paper claims for that kind of model.
FAMILIES = {
    "modadd_paper": ("modular addition, 1-layer transformer", "paper: LIB sparser"),
    "cifar_paper": ("vision MLP, CIFAR-10", "paper: LIB sparser"),
    "fashion_mlp": ("vision MLP on Fashion-MNIST, standing in for CIFAR-10",
                    "paper (CIFAR-10): LIB sparser"),
    "fashion_cnn": ("small CNN on Fashion-MNIST (2 stride-2 convolutions, spatial positions as "
                    "the position axis)", "no paper claim (the paper has no CNN)"),
    "tiny_gpt": ("2-block character GPT (stand-in for GPT-2 / TinyStories)",
                 "paper (LMs): no real gain"),
    "smollm2_135m": ("SmolLM2-135M, blocks 0-2 of 30, 8 x 32-token windows",
                     "paper (LMs): no real gain"),
    "smollm2_sections": ("SmolLM2-135M, block 1's attention section, 16 x 64-token windows",
                         "paper (LMs): no real gain"),
    "smollm2_blocks": ("SmolLM2-135M, blocks 1-3 (attention and MLP), 16 x 64-token windows",
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
    "edge_area": "edge-ablation area / possible edges (no tolerance)",
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
                 {**common, "metric": "edge_area_probes", "value": area.value,
                  "lower": area.lower, "upper": area.upper},
                 {**common, "metric": "edge_area",
                  "value": value(f"ablation/edge_area/{transition}")}]
        possible_total += possible
        required_total += required
    if possible_total:
        e99 = [r["value"] for r in rows if r["metric"] == "edges_99"]
        total = value(f"ablation/edges_required@{edge_delta}/total")
        common = {**base, "block": "transition", "row": "total", "censored": False}
        rows += [{**common, "metric": "edges_required", "value": total},
                 {**common, "metric": "edges_fraction", "value": total / possible_total,
                  "possible": possible_total},
                 {**common, "metric": "edges_99", "value": float(np.sum(e99))},
                 {**common, "metric": "edge_area", "value": value("ablation/edge_area/total")}]
    rows.append({**base, "block": "model", "row": "model", "metric": "modularity",
                 "value": value("modularity/q"), "censored": False})
    return rows, info


def long_table(results: Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Every run's metric values, and per experiment its layers, tolerance and score."""
    runs = data.runs(results)
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
        rows: list[dict] = []
        info: dict = {}
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
            if metric == "edge_area_probes":  # bisection probes pin it loosely: csv bounds only
                continue
            pairs = paired_log_ratios(group, "value", "lib", baseline, keys=("block", "row"),
                                      censored="censored")
            if metric == "edge_area":  # only runs that scored every halving have it
                pairs = pairs[pairs["status"] != "missing"]
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


def edge_areas(long: pd.DataFrame) -> pd.DataFrame:
    """Per seed and transition, both methods' edge-curve areas (in edges, from whatever points
    the run stored) with their monotone bounds."""
    area = long[long["metric"] == "edge_area_probes"]
    columns = ["experiment", "seed", "row", "value", "lower", "upper"]

    def named(frame: pd.DataFrame, side: str) -> pd.DataFrame:
        return frame[columns].rename(columns={"value": f"edge_area_{side}",
                                              "lower": f"edge_area_{side}_lower",
                                              "upper": f"edge_area_{side}_upper"})
    lib = named(area[area["method"] == "lib"], "lib")
    others = pd.concat([named(area[area["method"] == b], "baseline").assign(baseline=b)
                        for b in BASELINES])
    return lib.merge(others, on=["experiment", "seed", "row"])
