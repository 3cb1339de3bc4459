"""One run's page: its metrics, ablation curves, spectra, interaction graph and feature table."""

from __future__ import annotations

from typing import Any

import numpy as np

from interbasis.figures import data as figure_data
from interbasis.site import plots
from interbasis.site.collect import Run
from interbasis.site.html import esc, fmt, href, link, plot_div, table
from interbasis.site.labels import FeatureLabels

IDENTITY_KEYS = ("experiment", "method", "model", "seed", "status")  # in the page's first line
PARTNERS = 3  # strongest in- and out-edges listed per feature
PREVIEW_ROWS = 60  # other stored tables up to this many rows are shown whole
SHOWN_FILES = {"summary.json", "config.yaml", "meta.json", "curves.csv", "modularity.json",
               "fourier.csv", "class_means.csv"}


def split_metrics(run: Run) -> tuple[dict, dict, dict]:
    """Summary keys by what they are about: a node layer, a transition, or the whole run."""
    layers: dict[str, dict[str, Any]] = {name: {} for name in run.node_layers}
    names = run.node_layers
    transitions: dict[str, dict[str, Any]] = {f"{a}->{b}": {} for a, b in zip(names, names[1:])}
    other: dict[str, Any] = {}
    for key, value in run.summary.items():
        prefix, _, suffix = key.rpartition("/")
        if prefix and suffix in layers:
            layers[suffix][prefix] = value
        elif prefix and suffix in transitions:
            transitions[suffix][prefix] = value
        else:
            other[key] = value
    return layers, transitions, other


def metric_table(rows: dict[str, dict[str, Any]], first: str) -> str:
    columns: dict[str, None] = {}
    for values in rows.values():
        columns.update(dict.fromkeys(values))
    if not columns:
        return ""
    ordered = sorted(columns)
    return table([first, *ordered], [[name, *(values.get(c) for c in ordered)]
                                     for name, values in rows.items() if values])


def partner_links(graph, layer_index: int, feature: int) -> tuple[str, str]:
    """The strongest edges into and out of one feature, as links to their rows."""
    def links(layer_name: str, column: np.ndarray) -> str:
        order = [int(j) for j in np.argsort(-column, kind="stable")[:PARTNERS] if column[j] > 0]
        return ", ".join(
            f'<a href="#{plots.feature_anchor(layer_name, j)}">{esc(plots.short_layer(layer_name))}'
            f"#{j}</a> <span class=muted>{fmt(float(column[j]))}</span>" for j in order)

    incoming = outgoing = ""
    if graph.edges and layer_index > 0:
        incoming = links(graph.layers[layer_index - 1].name,
                         graph.edges[layer_index - 1][feature].double().numpy())
    if graph.edges and layer_index < len(graph.edges):
        outgoing = links(graph.layers[layer_index + 1].name,
                         graph.edges[layer_index][:, feature].double().numpy())
    return incoming, outgoing


def feature_table(graph, labels: FeatureLabels) -> str:
    rows, ids = [], []
    for index, layer in enumerate(graph.layers):
        importance = layer.eigenvalues.double().numpy()
        for feature in range(layer.rank):
            incoming, outgoing = partner_links(graph, index, feature)
            anchor = plots.feature_anchor(layer.name, feature)
            ids.append(anchor)
            name = f"{plots.short_layer(layer.name)}#{feature}"
            rows.append([(f'<a href="#{anchor}" title="{esc(layer.name)}">{esc(name)}</a>',
                          f"{index}.{feature:06d}"), float(importance[feature]),
                         labels.cluster(layer.name, feature), labels.label(layer.name, feature),
                         incoming, outgoing])
    return table(["feature", "importance", "cluster", "label", "strongest inputs",
                  "strongest outputs"], rows, sortable=True, raw_columns=(0, 4, 5),
                 row_ids=ids, css="features")


def other_files(run: Run) -> str:
    """The run's other stored files; small tables are shown whole."""
    import pandas as pd

    parts = []
    for path in sorted(run.path.iterdir()):
        if not path.is_file() or path.name in SHOWN_FILES or path.name.startswith("."):
            continue
        size = f"{path.stat().st_size / 1024:.0f} KiB"
        if path.suffix == ".csv":
            try:
                frame = pd.read_csv(path)
            except (OSError, ValueError):
                frame = None
            if frame is not None and len(frame) <= PREVIEW_ROWS:
                parts.append(f"<details><summary><code>{esc(path.name)}</code> ({size}, "
                             f"{len(frame)} rows)</summary>"
                             f"{table(list(frame.columns), frame.values.tolist())}</details>")
                continue
        parts.append(f"<p><code>{esc(path.name)}</code> ({size})</p>")
    return "".join(parts)


def graph_caption(labels: FeatureLabels, top: int) -> str:
    """What the graph view draws, and what could not be labelled."""
    resolution = labels.cluster_resolution
    text = (f"<p>The {top} most important features of each node layer (constant left out), "
            "grouped and coloured by Leiden cluster"
            + (f" (resolution {resolution:g}; grey: clusters with one drawn node)"
               if resolution is not None else " (no partition stored: all grey)")
            + "; edges: the largest edges between drawn features among those holding 99% of "
            "a transition's weight, width by log weight. Hover a node for its label; click it "
            "to open its row in the run's feature table.</p>")
    return text + "".join(f'<p class="note">{esc(note)}</p>' for note in labels.notes)


def graph_page(run: Run, graph, labels: FeatureLabels, *, json_url: str, run_url: str) -> str:
    """The body of a run's graph page: a larger graph view whose nodes open the feature rows."""
    out = [f"<p>{link(run_url, 'the run page')} | {link(json_url, 'this graph as JSON')} "
           "(schema: docs/graph_schema.md in the repository)</p>",
           graph_caption(labels, plots.GRAPH_PAGE_TOP),
           plot_div(plots.graph_view(graph, labels, link=run_url, top=plots.GRAPH_PAGE_TOP,
                                     title=f"{run.experiment} / {run.name}", show_labels=True),
                    "graph", clickable=True)]
    return "\n".join(out)


def build(run: Run, graph, labels: FeatureLabels | None, *, compare_url: str | None,
          graph_url: str | None, graph_page_url: str | None, index_url: str) -> str:
    """The body of the run page (the caller wraps it in ``html.page``)."""
    facts = [f"experiment <b>{esc(run.experiment)}</b>", f"method <b>{esc(run.method)}</b>",
             f"seed <b>{esc(fmt(run.seed))}</b>", f"model family <b>{esc(run.family)}</b>",
             f"status <b>{esc(run.status)}</b>"]
    links = [link(index_url, "all runs of this experiment")]
    if compare_url:
        links.append(link(compare_url, "compare the bases (same model and seed)"))
    if graph_url:
        links.append(link(graph_url, "graph as JSON (docs/graph_schema.md)"))
    out = [f"<p>{', '.join(facts)}</p>", f"<p>{' | '.join(links)}</p>"]
    if run.error:
        out.append(f'<p class="note">{esc(run.error)}</p>')

    layers, transitions, other = split_metrics(run)
    out.append("<h2>Metrics</h2><h3>Per node layer</h3>" + metric_table(layers, "node layer"))
    out.append("<h3>Per transition</h3>" + metric_table(transitions, "transition"))
    other = {k: v for k, v in other.items() if k not in IDENTITY_KEYS}
    out.append("<h3>Whole run</h3>" + table(["metric", "value"], sorted(other.items())))

    out.append("<h2>Ablation curves</h2>")
    try:
        frame = figure_data.curves(run.path)
        node_layers = run.node_layers
        out.append('<div class="grid">'
                   + plot_div(plots.node_curves(frame, node_layers), "node-curves")
                   + plot_div(plots.edge_curves(frame, node_layers), "edge-curves") + "</div>")
    except figure_data.MissingResults as missing:
        out.append(f'<p class="note">{esc(missing)}</p>')

    if graph is None:
        out.append('<h2>Interaction graph</h2><p class="note">no graph file (graph_*.pt) is '
                   "stored in this run's folder, so there are no spectra, graph or features "
                   "here</p>")
    elif labels is None:  # the caller derives them from the graph (site.labels.feature_labels)
        raise ValueError(f"{run.name}: a run page with a graph needs the graph's feature labels")
    else:
        out.append("<h2>Spectra</h2>" + plot_div(plots.spectra(graph), "spectra"))
        out.append("<h2>Interaction graph</h2>" + graph_caption(labels, plots.GRAPH_TOP))
        if graph_page_url:
            out.append(f"<p>{link(graph_page_url, 'the graph on its own page')} shows "
                       f"{plots.GRAPH_PAGE_TOP} features per layer.</p>")
        out.append(plot_div(plots.graph_view(graph, labels, link=""), "graph", clickable=True))
        out.append("<h2>Features</h2><p>Every basis feature (click a header to sort); inputs "
                   "and outputs are the strongest edges from the layer before and into the "
                   "layer after.</p>" + feature_table(graph, labels))

    out.append("<h2>Stored files and config</h2>" + other_files(run))
    config = run.path / "config.yaml"
    if config.is_file():
        out.append("<details><summary>config.yaml</summary><pre>"
                   f"{esc(config.read_text(encoding='utf-8'))}</pre></details>")
    meta = {key: run.meta.get(key) for key in ("git_commit", "git_dirty", "start_time",
                                               "end_time", "wandb_run_id", "hostname")}
    out.append(table(["meta", "value"], [[k, v] for k, v in meta.items() if v is not None]))
    return "\n".join(out)


def run_url(experiment: str, run_name: str) -> str:
    """The run page's path from the site root."""
    return href("runs", experiment, f"{run_name}.html")
