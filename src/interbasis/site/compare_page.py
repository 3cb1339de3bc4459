"""The comparison page: the bases of one model and seed (LIB, PCA, neuron, NGF) side by side."""

from __future__ import annotations

import math
import re
from typing import Any

from interbasis.figures import data as figure_data
from interbasis.site import plots
from interbasis.site.collect import Run, compared_method
from interbasis.site.html import esc, href, link, plot_div, table
from interbasis.site.labels import FeatureLabels
from interbasis.site.run_page import run_url

COMPARE_TOP = 15  # features per layer in the small graph views
SKIPPED = ("time/", "train/checkpoint", "train/steps_trained_now")
IDENTITY = ("model", "method", "seed", "experiment", "status")
_EDGES_REQUIRED = re.compile(r"^ablation/edges_required@([^/]+)/(.+)$")


def compare_url(experiment: str, key: str) -> str:
    return href("compare", experiment, f"{key}.html")


def metric_rows(runs: list[Run]) -> list[list[Any]]:
    """One row per summary key any of the runs has: the value per method, then LIB/PCA."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update((k, None) for k in run.summary
                    if k not in IDENTITY and not k.startswith(SKIPPED))
    methods = [run.method for run in runs]
    ratio = "lib" in methods and "pca" in methods
    rows = []
    for key in keys:
        values = [run.summary.get(key) for run in runs]
        row = [key, *values]
        if ratio:
            lib, pca = (runs[methods.index(m)].summary.get(key) for m in ("lib", "pca"))
            row.append(_ratio(lib, pca))
        rows.append(row)
    return rows


def _ratio(lib: Any, pca: Any) -> float | None:
    """lib / pca when both are numbers (bools are not) and pca is neither 0 nor NaN."""
    if isinstance(lib, bool) or isinstance(pca, bool):
        return None
    if not (isinstance(lib, int | float) and isinstance(pca, int | float)):
        return None
    return lib / pca if pca != 0 and not math.isnan(pca) else None


def edges_required(runs: list[Run]) -> tuple[str | None, dict[str, dict[str, float]]]:
    """``ablation/edges_required@<delta>/<transition>`` per method, at the first delta stored."""
    delta = None
    values: dict[str, dict[str, float]] = {}
    for run in runs:
        row = {}
        for key, value in run.summary.items():
            match = _EDGES_REQUIRED.match(key)
            if match and match.group(2) != "total":
                delta = delta or match.group(1)
                if match.group(1) == delta:
                    row[match.group(2)] = value
        values[compared_method(run)] = row
    return delta, values


def per_transition(runs: list[Run], prefix: str) -> dict[str, dict[str, float]]:
    return {compared_method(run): {key.removeprefix(prefix): value
                                   for key, value in run.summary.items()
                                   if key.startswith(prefix)} for run in runs}


def build(experiment: str, key: str, runs: list[Run], graphs: dict[str, Any],
          labels: dict[str, FeatureLabels]) -> str:
    """The page body. ``graphs`` / ``labels`` are keyed by method (runs without a graph absent)."""
    root = "../../"
    names = [plots.method_label(run.method) for run in runs]
    out = [f"<p>Experiment <b>{esc(experiment)}</b>, runs <b>{esc(key)}</b>: the same model and "
           f"data, bases {esc(', '.join(names))}. Runs: "
           + ", ".join(link(root + run_url(experiment, run.name), run.name) for run in runs)
           + ".</p>"]
    missing = [plots.method_label(m) for m in ("lib", "pca", "neuron", "ngf", "random")
               if m not in {run.method for run in runs}]
    if missing:
        out.append(f'<p class="muted">Not in the store for this model and seed: '
                   f"{esc(', '.join(missing))}.</p>")

    curves: dict[str, Any] = {}  # method -> its ablation curves (a DataFrame)
    for run in runs:
        try:
            curves[compared_method(run)] = figure_data.curves(run.path)
        except figure_data.MissingResults:
            continue
    layers = runs[0].node_layers
    delta, required = edges_required(runs)
    out.append("<h2>Ablations</h2>")
    out.append(plot_div(plots.compare_node_curves(curves, layers), "compare-nodes"))
    out.append('<div class="grid">' + plot_div(plots.compare_bars(
        required, f"Edges required at delta {delta} (log)", log=True), "compare-edges")
        + plot_div(plots.compare_bars(per_transition(runs, "sparsity/edges_99/"),
                                      "Edges holding 99% of the edge weight (log)", log=True),
                   "compare-edges99") + "</div>")
    if graphs:
        out.append("<h2>Spectra</h2>" + plot_div(plots.compare_spectra(graphs), "compare-spectra"))
        out.append(f"<h2>Interaction graphs</h2><p>The {COMPARE_TOP} most important features per "
                   "layer of each basis; click a node to open it on its run page.</p>")
        views = []
        for run in runs:
            if run.method not in graphs:
                views.append(f'<div><p class="note">{esc(plots.method_label(run.method))}: no '
                             "graph file stored for this run</p></div>")
                continue
            fig = plots.graph_view(graphs[run.method], labels[run.method],
                                   link=root + run_url(experiment, run.name), top=COMPARE_TOP,
                                   title=plots.method_label(run.method))
            views.append("<div>" + plot_div(fig, f"graph-{run.method}", clickable=True) + "</div>")
        out.append('<div class="grid">' + "".join(views) + "</div>")
    headers = ["metric", *names] + (["LIB/PCA"] if {"lib", "pca"} <= {r.method for r in runs}
                                    else [])
    out.append("<h2>Every metric</h2>" + table(headers, metric_rows(runs), sortable=True))
    return "\n".join(out)
