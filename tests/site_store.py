"""A tiny synthetic results store for the site tests, and a checker of the site's relative links.

Experiments: ``modadd_toy`` (LIB, PCA and neuron runs of seed 0, a LIB run of seed 1 and a failed
run), ``vision_toy`` (LIB with class tables, PCA without a graph, as the committed Fashion-MNIST
PCA runs) and ``lm_toy`` (one tiny-GPT LIB run: nothing to label its features with).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import torch

from interbasis.analysis.fourier import COLUMNS, fourier_purity
from interbasis.analysis.partition import eps_from_results, partition_record
from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve, NodeLayer
from interbasis.metrics import summarize
from interbasis.results import RunDirectory, curves_frame

MODADD_LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "output"]
VISION_LAYERS = ["0", "2", "output"]
CLASSES = ["T-shirt", "Trouser", "Sneaker", "Bag"]
GROUPS = ["clothing", "clothing", "footwear", "bag"]


def random_graph(method: str, layers: list[str], rng: np.random.Generator, rank: int = 8
                 ) -> Graph:
    """Rotated layers (width rank + 1, constant first) and unrotated logits (width 4)."""
    nodes = []
    for name in layers:
        width, r = (4, 4) if name == "output" else (rank + 1, rank)
        C = torch.tensor(rng.normal(size=(width, r)))
        eigenvalues = torch.tensor(np.sort(rng.uniform(0.1, 10, r))[::-1].copy())
        nodes.append(NodeLayer(name=name, C=C, C_pinv=torch.linalg.pinv(C),
                               eigenvalues=eigenvalues,
                               mean=torch.zeros(width, dtype=torch.float64),
                               gram_eigenvalues=torch.tensor(np.sort(rng.uniform(0, 5, width))),
                               has_constant=name != "output"))
    edges = [torch.tensor(rng.exponential(size=(b.rank, a.rank)) ** 3)
             for a, b in zip(nodes, nodes[1:])]
    return Graph(layers=nodes, edges=edges, method=method)


def write_run(root: Path, experiment: str, method: str, seed: int, family: str,
              layers: list[str], graph_file: bool = True) -> RunDirectory:
    rng = np.random.default_rng([seed, len(method), len(experiment)])
    graph = random_graph(method, layers, rng)
    node_curves = []
    for layer in graph.layers[:-1]:
        ks = list(range(layer.rank + 1))
        scores = list(np.minimum(1.0, np.array(ks) / rng.uniform(2, 5)))
        node_curves.append(NodeAblationCurve(layer=layer.name, ks=ks, scores=scores,
                                             base_score=1.0))
    edge_results = []
    for name, E in zip(graph.transition_names, graph.edges):
        n_possible = E[:, 1:].numel()
        n = int(rng.integers(2, n_possible))
        block = E[:, 1:].flatten()
        edge_results.append(EdgeAblationResult(
            transition=name, n_required=n, n_possible=n_possible,
            eps=block.topk(n).values[-1].item(), base_score=1.0, score_at_required=0.9995,
            delta=0.001, evaluations={n: 0.9995, n_possible: 1.0, n // 2: 0.5}))
    run = RunDirectory.for_run(root, experiment, f"method={method},seed={seed}")
    run.write_config({"model": {"family": family, "node_layers": layers},
                      "method": {"name": method}, "seed": seed,
                      "paths": {"root": f"/somewhere/{seed}"}})
    run.write_meta({"git_commit": "abc123", "start_time": "2026-01-01T00:00:00+00:00"})
    if graph_file:
        run.write_graph(graph)
    run.write_curves(curves_frame(node_curves, edge_results))
    delta, eps = eps_from_results(graph, edge_results)
    run.write_json("modularity", partition_record(graph, eps, delta))
    if family == "modadd":
        run.write_table("fourier", random_fourier_table(graph, rng))
    if family == "vision":
        rank = graph.layer("2").rank
        run.write_table("class_means", pd.DataFrame(
            [{"layer": 2, "feature": f, "class": c, "class_name": CLASSES[c], "group": GROUPS[c],
              "mean": (5.0 if c == f % 4 else 0.0) + 0.1 * rng.normal(), "count": 10}
             for f in range(rank) for c in range(4)]))
        run.write_table("class_separation", pd.DataFrame(
            {"layer": 2, "feature": range(rank), "eta2_groups": rng.uniform(size=rank),
             "eta2_classes": rng.uniform(size=rank)}))
    summary = summarize(graph, node_curves, edge_results)
    summary.update(model=family, method=method, seed=seed, experiment=experiment)
    run.write_summary(summary)
    return run


def write_site_store(root: Path) -> Path:
    """The store described at the top; returns ``root``."""
    for method in ("lib", "pca", "neuron"):
        write_run(root, "modadd_toy", method, 0, "modadd", MODADD_LAYERS)
    write_run(root, "modadd_toy", "lib", 1, "modadd", MODADD_LAYERS)
    failed = RunDirectory.for_run(root, "modadd_toy", "method=pca,seed=1")
    failed.write_config({"model": {"family": "modadd"}, "method": {"name": "pca"}, "seed": 1})
    failed.mark_failed(RuntimeError("out of memory"))
    write_run(root, "vision_toy", "lib", 0, "vision", VISION_LAYERS)
    write_run(root, "vision_toy", "pca", 0, "vision", VISION_LAYERS, graph_file=False)
    write_run(root, "lm_toy", "lib", 0, "tiny_gpt", ["blocks.0.hook_resid_pre", "ln_final",
                                                     "output"])
    return root


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for key in ("href", "src"):
            if values.get(key):
                self.urls.append(values[key])


def page_links(path: Path) -> tuple[list[str], set[str]]:
    """(every href/src, every element id) of one HTML page, plus graph nodes' click targets."""
    parser = _Links()
    text = path.read_text(encoding="utf-8")
    parser.feed(text)
    urls = list(parser.urls)
    for listed in re.findall(r'"customdata":\[([^\]]*)\]', text):  # what a node click opens
        urls.extend(json.loads(f"[{listed}]"))
    return urls, parser.ids


def broken_links(site: Path) -> list[str]:
    """Relative links of every page that do not lead to a file (or to an id in it)."""
    site = site.resolve()
    pages = {page.resolve(): page_links(page) for page in site.rglob("*.html")}
    broken = []
    for page, (urls, _) in pages.items():
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "javascript") or url.startswith("data:"):
                continue
            if parts.scheme or parts.netloc:
                broken.append(f"{page.relative_to(site)}: external {url}")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file() or site not in target.parents:
                broken.append(f"{page.relative_to(site)}: {url}")
            elif (parts.fragment and target.suffix == ".html"
                  and unquote(parts.fragment) not in pages[target][1]):
                broken.append(f"{page.relative_to(site)}: {url} (no such id)")
    return broken


def random_fourier_table(graph: Graph, rng: np.random.Generator) -> pd.DataFrame:
    """A fourier.csv for ``graph``: the purity of random feature grids over a 5 x 5 input grid."""
    tables = []
    for layer in graph.layers:
        table = fourier_purity(rng.normal(size=(5, 5, 1, layer.rank)))
        table.insert(0, "layer", layer.name)
        table.insert(2, "constant", layer.has_constant & (table["feature"] == 0))
        tables.append(table)
    return pd.concat(tables)[COLUMNS]
