"""The site's plotly figures: ablation curves, spectra and the interaction-graph view.

Each function returns a plain plotly.js figure, ``{"data": [traces], "layout": {...}}``, that
``html.plot_div`` hands to ``Plotly.newPlot``. Plain dicts rather than ``plotly.graph_objects``:
the objects validate and deep-copy every property, which made a build of the committed results
take minutes instead of seconds. Scatter traces are SVG (never WebGL), so they render in any
browser, a headless one included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from interbasis.site.graph_json import selected_edges
from interbasis.site.labels import FeatureLabels

if TYPE_CHECKING:  # the graph type only for hints: it imports torch
    from interbasis.basis.types import Graph

# The figures' method colours (interbasis.figures.style), repeated so the site needs no matplotlib.
METHOD_COLORS = {"lib": "#1f5fa8", "pca": "#d9741c", "neuron": "#5a9a3c", "ngf": "#8e44ad",
                 "random": "#6b6b6b"}
METHOD_LABELS = {"lib": "LIB", "pca": "PCA", "neuron": "neurons", "ngf": "NGF",
                 "random": "random rotation"}
# Node colours of the largest clusters (Okabe-Ito without black); UNCLUSTERED for the rest.
CLUSTER_COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
                  "#7f3c8d", "#11a579", "#3969ac")
UNCLUSTERED = "#b0b0b0"
LAYER_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")
GRAPH_TOP = 30  # features drawn per layer on a run page (the feature table lists all of them)
GRAPH_PAGE_TOP = 50  # on the graph's own page
EDGE_BINS = 4
AXIS = {"gridcolor": "#e8e8e8", "zeroline": False, "linecolor": "#999", "automargin": True}
LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "font": {"size": 12},
          "legend": {"orientation": "h", "y": -0.22, "yanchor": "top"}, "plot_bgcolor": "white",
          "paper_bgcolor": "white", "hovermode": "closest"}


def figure(title: str, panels: int = 1, titles: list[str] | None = None, **layout: Any
           ) -> dict[str, Any]:
    """An empty figure with ``panels`` side-by-side axes (``xaxis``, ``xaxis2``, ...)."""
    # the title sits left so that the mode bar (top right) never covers it
    out: dict[str, Any] = {"data": [], "layout": {
        **LAYOUT, "title": {"text": title, "x": 0.01, "xref": "container", "xanchor": "left"},
        **layout}}
    gap = 0.06 if panels > 1 else 0.0
    width = (1 - gap * (panels - 1)) / panels
    annotations = []
    for n in range(panels):
        suffix = "" if n == 0 else str(n + 1)
        start = n * (width + gap)
        out["layout"][f"xaxis{suffix}"] = {**AXIS, "domain": [start, start + width],
                                           "anchor": f"y{suffix}"}
        out["layout"][f"yaxis{suffix}"] = {**AXIS, "anchor": f"x{suffix}"}
        if titles:
            annotations.append({"text": titles[n], "x": start + width / 2, "y": 1.0,
                                "xref": "paper", "yref": "paper", "showarrow": False,
                                "xanchor": "center", "yanchor": "bottom"})
    if annotations:
        out["layout"]["annotations"] = annotations
    return out


def axes(fig: dict[str, Any], which: str, **properties: Any) -> None:
    """Set ``properties`` on every x (``which="x"``) or y axis of ``fig``."""
    for key, value in fig["layout"].items():
        if key.startswith(f"{which}axis") and isinstance(value, dict):
            value.update(properties)


def as_list(values) -> list:
    return np.asarray(values).tolist()


def method_label(method: str | None) -> str:
    return METHOD_LABELS.get(method or "", method or "?")


def method_color(method: str | None) -> str:
    return METHOD_COLORS.get(method or "", "#555555")


def short_layer(name: str) -> str:
    """``blocks.0.hook_resid_mid`` -> ``0.resid_mid`` (plot ticks; tables keep full names)."""
    return name.removeprefix("blocks.").replace("hook_", "")


def layer_color(index: int) -> str:
    return LAYER_COLORS[index % len(LAYER_COLORS)]


def lower_is_better(score_name: str) -> bool:
    return any(word in score_name for word in ("entropy", "loss"))


def _plateau_range(*frames: pd.DataFrame) -> float | None:
    """Twice the largest k at which a node curve first comes within 1% of its base score."""
    reached, largest = [], 0.0
    for frame in frames:
        rows = frame[frame["kind"] == "node"]
        for _, part in rows.groupby("layer", sort=False):
            part = part.sort_values("x")
            close = ((part["score"] - part["base_score"]).abs()
                     <= 0.01 * part["base_score"].abs()).to_numpy()
            largest = max(largest, float(part["x"].max()))
            if close.any():
                reached.append(float(part["x"].to_numpy()[close.argmax()]))
    if not reached:
        return None
    return min(largest, 2 * max(reached) + 2)


def node_curves(frame: pd.DataFrame, layers: list[str],
                title: str = "Node ablation") -> dict | None:
    """Score with only the first k features kept, one line per node layer."""
    rows = frame[frame["kind"] == "node"]
    if rows.empty:
        return None
    fig = figure(title)
    for layer, part in rows.groupby("layer", sort=False):
        part = part.sort_values("x")
        index = layers.index(layer) if layer in layers else len(layers)
        fig["data"].append({"type": "scatter", "x": as_list(part["x"]),
                            "y": as_list(part["score"]), "mode": "lines+markers",
                            "marker": {"size": 4}, "line": {"color": layer_color(index)},
                            "name": short_layer(str(layer))})
    axes(fig, "x", title={"text": "features kept (k, by importance)"})
    axes(fig, "y", title={"text": str(rows["score_name"].iloc[0])})
    upper = _plateau_range(frame)
    if upper is not None:  # the curves are flat after this; double-click shows all
        axes(fig, "x", range=[-0.5, upper])
    return fig


def edge_curves(frame: pd.DataFrame, layers: list[str],
                title: str = "Edge ablation") -> dict | None:
    """Score against edges kept, at the points the bisection evaluated (log x, no 0)."""
    rows = frame[(frame["kind"] == "edge") & (frame["x"] > 0)]
    if rows.empty:
        return None
    fig = figure(title)
    for transition, part in rows.groupby("layer", sort=False):
        part = part.sort_values("x").drop_duplicates("x")
        source = str(transition).split("->")[0]
        index = layers.index(source) if source in layers else len(layers)
        name = " -> ".join(short_layer(s) for s in str(transition).split("->"))
        fig["data"].append({"type": "scatter", "x": as_list(part["x"]),
                            "y": as_list(part["score"]), "mode": "markers", "name": name,
                            "marker": {"size": 7, "color": layer_color(index)}})
    score = str(rows["score_name"].iloc[0])
    base, delta = float(rows["base_score"].median()), float(rows["delta"].median())
    if np.isfinite(delta):
        limit = base + delta if lower_is_better(score) else base - delta
        fig["layout"]["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1,
                                    "yref": "y", "y0": limit, "y1": limit,
                                    "line": {"dash": "dash", "color": "#888", "width": 1}}]
        fig["layout"]["annotations"] = [{"text": f"criterion (delta {delta:g})", "xref": "paper",
                                         "x": 1, "xanchor": "right", "yref": "y", "y": limit,
                                         "yanchor": "top", "showarrow": False,
                                         "font": {"size": 11, "color": "#666"}}]
    axes(fig, "x", type="log", title={"text": "edges kept (evaluated points)"})
    axes(fig, "y", title={"text": score})
    return fig


def spectra(graph, title: str = "Spectra: basis importance (solid), Gram eigenvalues (dotted)"
            ) -> dict:
    """Per layer: the basis importances (Lambda or D) and the untruncated Gram eigenvalues."""
    fig = figure(title)
    for n, layer in enumerate(graph.layers):
        colour = layer_color(n)
        for values, dash, what in ((layer.eigenvalues, "solid", "basis"),
                                   (layer.gram_eigenvalues, "dot", "Gram")):
            y = np.sort(np.abs(values.double().numpy()))[::-1]
            y = y[y > 0]
            if len(y):
                fig["data"].append({"type": "scatter", "x": list(range(1, len(y) + 1)),
                                    "y": as_list(y), "mode": "lines",
                                    "line": {"color": colour, "dash": dash},
                                    "name": f"{short_layer(layer.name)} {what}"})
    axes(fig, "x", title={"text": "index (descending)"})
    axes(fig, "y", type="log", exponentformat="power", title={"text": "eigenvalue"})
    return fig


def _drawn(layer, top: int, clusters: list[int] | None) -> list[int]:
    """The ``top`` most important non-constant features, grouped by cluster."""
    values = np.abs(layer.eigenvalues.double().numpy())
    order = [int(j) for j in np.argsort(-values, kind="stable")
             if not (layer.has_constant and j == 0)][:top]
    if clusters is None:
        return order
    rank = {c: n for n, c in enumerate(order)}
    return sorted(order, key=lambda c: (clusters[c], rank[c]))


def cluster_colours(labels: FeatureLabels, drawn: dict[str, list[int]]) -> dict[int, str]:
    """The largest clusters among the drawn nodes (two or more members) get distinct colours."""
    counts = pd.Series([labels.cluster(layer, f) for layer, fs in drawn.items() for f in fs],
                       dtype="object").dropna()
    counts = counts[counts != -1].value_counts()
    largest = [c for c, size in counts.items() if size >= 2][:len(CLUSTER_COLORS)]
    return {int(c): CLUSTER_COLORS[n] for n, c in enumerate(largest)}


def graph_view(graph, labels: FeatureLabels, link: str = "#", top: int = GRAPH_TOP,
               title: str = "Interaction graph", show_labels: bool = False) -> dict | None:
    """Nodes are the top features per layer, edges the largest between drawn nodes.

    A node's ``customdata`` is the address of its row in the feature table (``link`` + anchor), so
    a click opens the feature. Edge width and opacity grow with log(weight), in EDGE_BINS bins.
    """
    if not graph.edges:
        return None
    drawn = {layer.name: _drawn(layer, top, labels.clusters.get(layer.name))
             for layer in graph.layers}
    position = {}
    for x, layer in enumerate(graph.layers):
        features = drawn[layer.name]
        for n, feature in enumerate(features):
            position[(layer.name, feature)] = (x, 1 - n / max(len(features) - 1, 1))
    segments = []
    for (source, target), E in zip(zip(graph.layers, graph.layers[1:]), graph.edges):
        for row, column, weight in selected_edges(E.double().numpy()):
            tail, head = (source.name, column), (target.name, row)
            if tail in position and head in position:
                segments.append((position[tail], position[head], weight))
    fig = figure(title, margin={"l": 20, "r": 20, "t": 50, "b": 40},
                 height=max(420, 16 * max(map(len, drawn.values())) + 120), showlegend=False)
    if segments:
        logs = np.log10([w for _, _, w in segments])
        low, high = logs.min(), logs.max()
        bins = np.zeros(len(logs), int) if high == low else np.minimum(
            ((logs - low) / (high - low) * EDGE_BINS).astype(int), EDGE_BINS - 1)
        for b in range(EDGE_BINS):
            xs, ys = [], []
            for (start, end, _), k in zip(segments, bins):
                if k == b:
                    xs += [start[0], end[0], None]
                    ys += [start[1], end[1], None]
            if xs:
                fig["data"].append({
                    "type": "scatter", "x": xs, "y": ys, "mode": "lines", "hoverinfo": "skip",
                    "line": {"width": 0.5 + 1.2 * b,
                             "color": f"rgba(40,40,40,{0.15 + 0.2 * b:.2f})"}})
    colours = cluster_colours(labels, drawn)
    xs, ys, texts, colour, links = [], [], [], [], []
    for layer in graph.layers:
        importance = layer.eigenvalues.double().numpy()
        for feature in drawn[layer.name]:
            x, y = position[(layer.name, feature)]
            cluster = labels.cluster(layer.name, feature)
            label = labels.label(layer.name, feature) or "(no label)"
            xs.append(x)
            ys.append(y)
            colour.append(UNCLUSTERED if cluster is None else colours.get(cluster, UNCLUSTERED))
            links.append(f"{link}#{feature_anchor(layer.name, feature)}")
            texts.append(f"<b>{layer.name} #{feature}</b><br>{label}<br>importance "
                         f"{importance[feature]:.3g}<br>cluster "
                         f"{'-' if cluster is None else cluster}")
    nodes = {"type": "scatter", "x": xs, "y": ys, "mode": "markers", "hovertext": texts,
             "hoverinfo": "text", "customdata": links, "name": "features",
             "marker": {"size": 11, "color": colour, "line": {"color": "black", "width": 0.8}}}
    if show_labels:  # the label's head (e.g. the Fourier term) beside each node
        nodes.update(mode="markers+text", textposition="middle right",
                     textfont={"size": 9, "color": "#333"},
                     text=[(labels.label(layer.name, f) or "").split(" (")[0].split(",")[0]
                           for layer in graph.layers for f in drawn[layer.name]])
    fig["data"].append(nodes)
    axes(fig, "x", tickvals=list(range(len(graph.layers))),
         ticktext=[short_layer(layer.name) for layer in graph.layers], showgrid=False,
         range=[-0.3, len(graph.layers) - 0.7])
    axes(fig, "y", visible=False, range=[-0.05, 1.05])
    return fig


def feature_anchor(layer: str, feature: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in layer)
    return f"f-{safe}-{feature}"


def compare_node_curves(curves: dict[str, pd.DataFrame], layers: list[str]) -> dict | None:
    """Node ablation per layer (one panel each), one line per method."""
    layers = [layer for layer in layers if any(
        ((c["kind"] == "node") & (c["layer"] == layer)).any() for c in curves.values())]
    if not layers:
        return None
    fig = figure("Node ablation: score with the first k features kept", len(layers),
                 [short_layer(x) for x in layers], height=400,
                 margin={**LAYOUT["margin"], "t": 90})
    for method, frame in curves.items():
        for n, layer in enumerate(layers):
            part = frame[(frame["kind"] == "node") & (frame["layer"] == layer)].sort_values("x")
            suffix = "" if n == 0 else str(n + 1)
            fig["data"].append({"type": "scatter", "x": as_list(part["x"]),
                                "y": as_list(part["score"]), "mode": "lines",
                                "line": {"color": method_color(method)},
                                "name": method_label(method), "legendgroup": method,
                                "showlegend": n == 0, "xaxis": f"x{suffix}",
                                "yaxis": f"y{suffix}"})
    upper = _plateau_range(*curves.values())
    if upper is not None:
        axes(fig, "x", range=[-0.5, upper])
    names = {str(c["score_name"].iloc[0]) for c in curves.values() if len(c)}
    fig["layout"]["yaxis"]["title"] = {"text": " / ".join(sorted(names))}
    return fig


def compare_bars(values: dict[str, dict[str, float]], title: str, log: bool) -> dict | None:
    """Grouped bars: ``values[method][transition]``."""
    if not any(values.values()):
        return None
    fig = figure(title, height=380, barmode="group")
    for method, row in values.items():
        names = list(row)
        fig["data"].append({"type": "bar",
                            # two-line ticks: long transition names never need rotating
                            "x": [" -><br>".join(short_layer(s) for s in name.split("->"))
                                  for name in names],
                            "y": [row[name] for name in names], "name": method_label(method),
                            "marker": {"color": method_color(method)}})
    if log:
        axes(fig, "y", type="log")
    return fig


def compare_spectra(graphs: dict[str, Graph]) -> dict | None:
    """Basis importances per layer (one panel each), one line per method."""
    if not graphs:
        return None
    layers = next(iter(graphs.values())).layer_names
    fig = figure("Basis importance spectra (Lambda for LIB, D for PCA)", len(layers),
                 [short_layer(x) for x in layers], height=400,
                 margin={**LAYOUT["margin"], "t": 90})
    for method, graph in graphs.items():
        for n, name in enumerate(layers):
            try:
                layer = graph.layer(name)
            except KeyError:
                continue
            y = np.sort(np.abs(layer.eigenvalues.double().numpy()))[::-1]
            y = y[y > 0]
            suffix = "" if n == 0 else str(n + 1)
            fig["data"].append({"type": "scatter", "x": list(range(1, len(y) + 1)),
                                "y": as_list(y), "mode": "lines",
                                "line": {"color": method_color(method)},
                                "name": method_label(method), "legendgroup": method,
                                "showlegend": n == 0, "xaxis": f"x{suffix}",
                                "yaxis": f"y{suffix}"})
    axes(fig, "y", type="log", exponentformat="power")
    return fig
