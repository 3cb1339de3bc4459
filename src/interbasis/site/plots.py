"""The site's plotly figures: ablation curves, spectra and the interaction-graph view.

Each function returns a ``plotly.graph_objects.Figure``; ``html.plot_div`` embeds it. Scatter
traces are SVG (never WebGL), so they render in any browser, a headless one included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interbasis.site.graph_json import selected_edges
from interbasis.site.labels import FeatureLabels

# The figures' method colours (interbasis.figures.style), repeated so the site needs no matplotlib.
METHOD_COLORS = {"lib": "#1f5fa8", "pca": "#d9741c", "neuron": "#5a9a3c", "ngf": "#8e44ad"}
METHOD_LABELS = {"lib": "LIB", "pca": "PCA", "neuron": "neurons", "ngf": "NGF"}
# Node colours of the largest clusters (Okabe-Ito without black); UNCLUSTERED for the rest.
CLUSTER_COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
                  "#7f3c8d", "#11a579", "#3969ac")
UNCLUSTERED = "#b0b0b0"
LAYER_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")
GRAPH_TOP = 30  # features drawn per layer on a run page (the feature table lists all of them)
GRAPH_PAGE_TOP = 50  # on the graph's own page
EDGE_BINS = 4
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
          "font": {"size": 12}, "legend": {"orientation": "h", "y": -0.2}}


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
                title: str = "Node ablation") -> go.Figure | None:
    """Score with only the first k features kept, one line per node layer."""
    rows = frame[frame["kind"] == "node"]
    if rows.empty:
        return None
    fig = go.Figure()
    for layer, part in rows.groupby("layer", sort=False):
        part = part.sort_values("x")
        index = layers.index(layer) if layer in layers else len(layers)
        fig.add_trace(go.Scatter(x=part["x"], y=part["score"], mode="lines+markers",
                                 marker={"size": 4}, line={"color": layer_color(index)},
                                 name=short_layer(str(layer))))
    score = rows["score_name"].iloc[0]
    fig.update_layout(title=title, xaxis_title="features kept (k, by importance)",
                      yaxis_title=score, **LAYOUT)
    upper = _plateau_range(frame)
    if upper is not None:  # the curves are flat after this; the home button shows all
        fig.update_xaxes(range=[-0.5, upper])
    return fig


def edge_curves(frame: pd.DataFrame, layers: list[str],
                title: str = "Edge ablation") -> go.Figure | None:
    """Score against edges kept, at the points the bisection evaluated (log x, no 0)."""
    rows = frame[(frame["kind"] == "edge") & (frame["x"] > 0)]
    if rows.empty:
        return None
    fig = go.Figure()
    for transition, part in rows.groupby("layer", sort=False):
        part = part.sort_values("x").drop_duplicates("x")
        source = str(transition).split("->")[0]
        index = layers.index(source) if source in layers else len(layers)
        name = " -> ".join(short_layer(s) for s in str(transition).split("->"))
        fig.add_trace(go.Scatter(x=part["x"], y=part["score"], mode="markers", name=name,
                                 marker={"size": 7, "color": layer_color(index)}))
    score = str(rows["score_name"].iloc[0])
    base, delta = float(rows["base_score"].median()), float(rows["delta"].median())
    if np.isfinite(delta):
        limit = base + delta if lower_is_better(score) else base - delta
        fig.add_hline(y=limit, line={"dash": "dash", "color": "#888", "width": 1},
                      annotation_text=f"criterion (delta {delta:g})",
                      annotation_position="bottom right")
    fig.update_layout(title=title, xaxis_title="edges kept (evaluated points)",
                      yaxis_title=score, **LAYOUT)
    fig.update_xaxes(type="log")
    return fig


def spectra(graph, title: str = "Spectra: basis importance (solid), Gram eigenvalues (dotted)"
            ) -> go.Figure:
    """Per layer: the basis importances (Lambda or D) and the untruncated Gram eigenvalues."""
    fig = go.Figure()
    for n, layer in enumerate(graph.layers):
        colour = layer_color(n)
        for values, dash, what in ((layer.eigenvalues, "solid", "basis"),
                                   (layer.gram_eigenvalues, "dot", "Gram")):
            y = np.sort(np.abs(values.double().numpy()))[::-1]
            y = y[y > 0]
            if len(y):
                fig.add_trace(go.Scatter(
                    x=np.arange(1, len(y) + 1), y=y, mode="lines",
                    line={"color": colour, "dash": dash},
                    name=f"{short_layer(layer.name)} {what}"))
    fig.update_layout(title=title, xaxis_title="index (descending)",
                      yaxis_title="eigenvalue", **LAYOUT)
    fig.update_yaxes(type="log", exponentformat="power")
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
               title: str = "Interaction graph") -> go.Figure | None:
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
            a, b = (source.name, column), (target.name, row)
            if a in position and b in position:
                segments.append((position[a], position[b], weight))
    fig = go.Figure()
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
                fig.add_trace(go.Scatter(
                    x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                    line={"width": 0.5 + 1.2 * b, "color": f"rgba(40,40,40,{0.15 + 0.2 * b:.2f})"}))
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
            colour.append(colours.get(cluster, UNCLUSTERED))
            links.append(f"{link}#{feature_anchor(layer.name, feature)}")
            texts.append(f"<b>{layer.name} #{feature}</b><br>{label}<br>importance "
                         f"{importance[feature]:.3g}<br>cluster "
                         f"{'-' if cluster is None else cluster}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", text=texts, hoverinfo="text",
                             customdata=links, showlegend=False, name="features",
                             marker={"size": 11, "color": colour,
                                     "line": {"color": "black", "width": 0.8}}))
    fig.update_layout(title=title, **{**LAYOUT, "margin": {"l": 20, "r": 20, "t": 50, "b": 40}},
                      height=max(420, 16 * max(map(len, drawn.values())) + 120),
                      hovermode="closest")
    fig.update_xaxes(tickvals=list(range(len(graph.layers))),
                     ticktext=[short_layer(layer.name) for layer in graph.layers],
                     showgrid=False, zeroline=False, range=[-0.3, len(graph.layers) - 0.7])
    fig.update_yaxes(visible=False, range=[-0.05, 1.05])
    return fig


def feature_anchor(layer: str, feature: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in layer)
    return f"f-{safe}-{feature}"


def compare_node_curves(curves: dict[str, pd.DataFrame], layers: list[str]) -> go.Figure | None:
    """Node ablation per layer (one panel each), one line per method."""
    layers = [layer for layer in layers if any(
        ((c["kind"] == "node") & (c["layer"] == layer)).any() for c in curves.values())]
    if not layers:
        return None
    fig = make_subplots(rows=1, cols=len(layers), subplot_titles=[short_layer(x) for x in layers],
                        shared_yaxes=True)
    for method, frame in curves.items():
        for n, layer in enumerate(layers):
            part = frame[(frame["kind"] == "node") & (frame["layer"] == layer)].sort_values("x")
            fig.add_trace(go.Scatter(x=part["x"], y=part["score"], mode="lines",
                                     line={"color": method_color(method)},
                                     name=method_label(method), legendgroup=method,
                                     showlegend=n == 0), row=1, col=n + 1)
    fig.update_layout(title="Node ablation: score with the first k features kept", height=400,
                      **{**LAYOUT, "margin": {**LAYOUT["margin"], "t": 90}})
    upper = _plateau_range(*curves.values())
    if upper is not None:
        fig.update_xaxes(range=[-0.5, upper])
    return fig


def compare_bars(values: dict[str, dict[str, float]], title: str, log: bool) -> go.Figure | None:
    """Grouped bars: ``values[method][transition]``."""
    if not any(values.values()):
        return None
    fig = go.Figure()
    for method, row in values.items():
        names = list(row)
        fig.add_trace(go.Bar(x=[" -> ".join(short_layer(s) for s in name.split("->"))
                                for name in names],
                             y=[row[name] for name in names], name=method_label(method),
                             marker={"color": method_color(method)}))
    fig.update_layout(title=title, barmode="group", height=380, **LAYOUT)
    if log:
        fig.update_yaxes(type="log")
    return fig


def compare_spectra(graphs: dict[str, object]) -> go.Figure | None:
    """Basis importances per layer (one panel each), one line per method."""
    if not graphs:
        return None
    layers = next(iter(graphs.values())).layer_names
    fig = make_subplots(rows=1, cols=len(layers), subplot_titles=[short_layer(x) for x in layers])
    for method, graph in graphs.items():
        for n, name in enumerate(layers):
            try:
                layer = graph.layer(name)
            except KeyError:
                continue
            y = np.sort(np.abs(layer.eigenvalues.double().numpy()))[::-1]
            y = y[y > 0]
            fig.add_trace(go.Scatter(x=np.arange(1, len(y) + 1), y=y, mode="lines",
                                     line={"color": method_color(method)},
                                     name=method_label(method), legendgroup=method,
                                     showlegend=n == 0), row=1, col=n + 1)
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_layout(title="Basis importance spectra (Lambda for LIB, D for PCA)", height=400,
                      **{**LAYOUT, "margin": {**LAYOUT["margin"], "t": 90}})
    return fig
