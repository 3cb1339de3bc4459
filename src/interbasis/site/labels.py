"""A short label per graph feature, from the analysis files a run stored, and its Leiden cluster.

- modular addition: ``fourier.csv`` (the feature's top Fourier term and its purity);
- vision MLPs: ``class_means.csv`` (the class whose mean is furthest from the feature's mean over
  classes, "high" or "low", its group, and the eta^2 of the class groups from
  ``class_separation.csv``); the logits are named by their class;
- the polysemanticity toy: ``toy_features.csv`` (the one-hot input the feature is purest on);
- language models: ``top_tokens.csv`` where ``python -m interbasis.metrics.top_tokens`` wrote it
  (the tokens the feature is largest on, in magnitude) and ``positions.csv`` where
  ``python -m interbasis.metrics.positions`` wrote it (the share of the feature's variance
  explained by token position), side by side; the page says which of the two is missing.

Every label source that is missing or does not cover a layer is reported in ``notes`` (one line
each), so a page can say what it could not label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from interbasis.figures import data as figure_data
from interbasis.metrics.positions import POSITIONS_FILE, read_shares
from interbasis.metrics.top_tokens import TOP_TOKENS_FILE, tokens_by_feature
from interbasis.site.collect import Run

CLUSTER_RESOLUTION = 0.5  # the paper's main-text graph (figure 3 draws the same partition)
LM_FAMILIES = ("tiny_gpt", "hf_lm")
LABEL_TOKENS = 5  # top tokens a language-model feature's label names (top_tokens.csv keeps 5)


@dataclass
class FeatureLabels:
    """``labels[layer][feature]`` (None if unlabelled), clusters likewise, and what is missing."""

    labels: dict[str, list[str | None]] = field(default_factory=dict)
    clusters: dict[str, list[int]] = field(default_factory=dict)
    cluster_resolution: float | None = None
    source: str | None = None  # the file the labels came from
    notes: list[str] = field(default_factory=list)

    def label(self, layer: str, feature: int) -> str | None:
        values = self.labels.get(layer)
        return values[feature] if values is not None and feature < len(values) else None

    def cluster(self, layer: str, feature: int) -> int | None:
        values = self.clusters.get(layer)
        return int(values[feature]) if values is not None and feature < len(values) else None


def feature_labels(run: Run, graph) -> FeatureLabels:
    """Labels and clusters for every node of ``graph`` (a stored Graph of ``run``)."""
    result = FeatureLabels()
    family = run.family
    try:
        if family == "modadd":
            result.source = "fourier.csv"
            _fourier(run, graph, result)
        elif family == "vision":
            result.source = "class_means.csv"
            _classes(run, graph, result)
        elif family == "poly_toy":
            result.source = "toy_features.csv"
            _toy(run, graph, result)
        elif family in LM_FAMILIES:
            _language_model(run, graph, result)
        else:
            result.notes.append(f"no feature labels for model family {family!r}")
    except figure_data.MissingResults as missing:
        result.notes.append(str(missing))
    for layer in graph.layers:
        if layer.has_constant:  # column 0 is the constant direction, whatever the source says
            result.labels.setdefault(layer.name, [None] * layer.rank)[0] = "constant"
    unlabelled = [layer.name for layer in graph.layers
                  if not any(value not in (None, "constant")
                             for value in result.labels.get(layer.name, []))]
    if unlabelled and result.source is not None:
        verb = "have" if " and " in result.source else "has"  # "top_tokens.csv and positions.csv"
        result.notes.append(f"{result.source} {verb} no labels for layer(s) "
                            f"{', '.join(unlabelled)}")
    _clusters(run, graph, result)
    return result


def _empty(graph) -> dict[str, list[str | None]]:
    return {layer.name: [None] * layer.rank for layer in graph.layers}


def _fourier(run: Run, graph, result: FeatureLabels) -> None:
    table = figure_data.fourier_table(run.path, run.experiment)
    result.labels = _empty(graph)
    for row in table.itertuples(index=False):
        values = result.labels.get(str(row.layer))
        if values is None or not 0 <= int(row.feature) < len(values):
            continue
        purity = "" if pd.isna(row.purity) else f" (purity {row.purity:.2f})"
        values[int(row.feature)] = f"{row.term}{purity}"


def _classes(run: Run, graph, result: FeatureLabels) -> None:
    means = pd.read_csv(figure_data.run_file(run.path, "class_means.csv", run.experiment))
    means["layer"] = means["layer"].astype(str)
    eta2 = {}
    separation = run.path / "class_separation.csv"
    if separation.is_file():
        frame = pd.read_csv(separation)
        eta2 = {(str(r.layer), int(r.feature)): r.eta2_groups for r in frame.itertuples()}
    result.labels = _empty(graph)
    for (layer, feature), rows in means.groupby(["layer", "feature"], sort=False):
        values = result.labels.get(layer)
        if values is None or not 0 <= int(feature) < len(values):
            continue
        # the class furthest from the feature's mean over classes says most about the feature
        deviation = rows["mean"] - rows["mean"].mean()
        top = rows.loc[deviation.abs().idxmax()]
        sign = "high" if deviation[top.name] >= 0 else "low"
        label = f"{top['class_name']} ({top['group']}) {sign}"
        groups = eta2.get((layer, int(feature)))
        if groups is not None and not pd.isna(groups):
            label += f", group eta2 {groups:.2f}"
        values[int(feature)] = label
    names = means.drop_duplicates("class").set_index("class")["class_name"].to_dict()
    for layer in graph.layers:
        if not layer.has_constant and layer.name == "output":  # unrotated logits: one per class
            result.labels[layer.name] = [f"logit {names.get(j, j)}" for j in range(layer.rank)]


def _toy(run: Run, graph, result: FeatureLabels) -> None:
    table = pd.read_csv(figure_data.run_file(run.path, "toy_features.csv", run.experiment))
    result.labels = _empty(graph)
    for row in table.itertuples(index=False):
        values = result.labels.get(str(row.layer))
        if values is not None and 0 <= int(row.feature) < len(values):
            values[int(row.feature)] = f"input {row.top_input} (purity {row.purity:.2f})"
    for layer in graph.layers:
        if not layer.has_constant and layer.name == "output":
            result.labels[layer.name] = [f"output {j}" for j in range(layer.rank)]


def _language_model(run: Run, graph, result: FeatureLabels) -> None:
    """Top tokens and position share, each where its file is stored; a note for each missing."""
    sources = [name for name in (TOP_TOKENS_FILE, POSITIONS_FILE) if (run.path / name).is_file()]
    if not sources:
        result.notes.append(
            "no top tokens or position shares are stored for this language-model run "
            f"(`python -m interbasis.metrics.top_tokens <run>` writes {TOP_TOKENS_FILE}, "
            f"`python -m interbasis.metrics.positions <run>` {POSITIONS_FILE}): "
            "features show index and importance only")
        return
    result.source = " and ".join(sources)
    if TOP_TOKENS_FILE not in sources:
        result.notes.append(f"no top tokens are stored for this language-model run "
                            f"(`python -m interbasis.metrics.top_tokens <run>` writes "
                            f"{TOP_TOKENS_FILE}): features show their position share only")
    if POSITIONS_FILE not in sources:
        result.notes.append(f"no position shares are stored for this language-model run "
                            f"(`python -m interbasis.metrics.positions <run>` writes "
                            f"{POSITIONS_FILE}): features show their top tokens only")
    parts: dict[tuple[str, int], list[str]] = {}
    if TOP_TOKENS_FILE in sources:
        try:
            tokens = tokens_by_feature(run.path, LABEL_TOKENS)
        except ValueError as error:
            result.notes.append(str(error))
        else:
            for key, top in tokens.items():
                parts.setdefault(key, []).append(
                    "top tokens " + " ".join(repr(token) for token in top))
    if POSITIONS_FILE in sources:
        for key, share in read_shares(run.path).items():
            parts.setdefault(key, []).append(f"position share {share:.2f}")
    result.labels = _empty(graph)
    for (layer, feature), texts in parts.items():
        values = result.labels.get(layer)
        if values is not None and 0 <= feature < len(values):
            values[feature] = "; ".join(texts)


def _clusters(run: Run, graph, result: FeatureLabels) -> None:
    path = run.path / "modularity.json"
    if not path.is_file():
        result.notes.append("no modularity.json: nodes are not clustered")
        return
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    partitions = record.get("partitions") or []
    if not partitions:
        result.notes.append("modularity.json holds no partition: nodes are not clustered")
        return
    chosen = next((p for p in partitions
                   if abs(p["resolution"] - CLUSTER_RESOLUTION) < 1e-12), partitions[0])
    result.cluster_resolution = float(chosen["resolution"])
    for layer in graph.layers:
        membership = chosen["membership"].get(layer.name)
        if membership is not None and len(membership) == layer.rank:
            result.clusters[layer.name] = [int(value) for value in membership]
