"""How much of each language-model feature's variance token position explains (positions.csv).

    python -m interbasis.metrics.positions results/runs/tiny_gpt/method=lib,seed=0 ...

For every node layer with a position axis, the features f = x C of the run's stored basis on the
run's own basis inputs (the train windows it was built on), and per feature the share of its
variance over all windows and positions that the mean at each position explains:

    position_share = sum_p N (mean_p - mean)^2 / sum_{n,p} (f_np - mean)^2

(0: position says nothing about the feature; 1: the feature is a function of position alone).
Written to ``positions.csv`` in the run folder (columns layer, feature, position_share,
eigenvalue), beside the run's other files; nothing already stored changes. Figure 6c and the
results browser read it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from interbasis.basis.ablation import prepare_model
from interbasis.basis.sections import OUTPUT, capture
from interbasis.basis.types import Graph, NodeLayer
from interbasis.results import atomic_write_text
from interbasis.results.stored import stored_graph, stored_run_config

POSITIONS_FILE = "positions.csv"


class PositionMoments:
    """Per-position sums of features over windows, accumulated batch by batch."""

    def __init__(self) -> None:
        self.by_position: Tensor | None = None  # (P, r) sums over windows
        self.squares: Tensor | None = None  # (r,) sums of squares over windows and positions
        self.windows = 0

    def update(self, features: Tensor) -> None:
        """``features``: (windows, positions, r)."""
        if features.ndim != 3:
            raise ValueError("features must be (windows, positions, r), got "
                             f"{tuple(features.shape)}")
        features = features.double()
        sums, squares = features.sum(0), (features ** 2).sum((0, 1))
        if self.by_position is None or self.squares is None:
            self.by_position, self.squares = sums, squares
        else:
            self.by_position, self.squares = self.by_position + sums, self.squares + squares
        self.windows += features.shape[0]

    def position_share(self) -> Tensor:
        """Between-position variance over total variance per feature (NaN for a constant one)."""
        if self.by_position is None or self.squares is None:
            raise ValueError("no features were added")
        n, positions = self.windows, self.by_position.shape[0]
        means = self.by_position / n
        grand = means.mean(0)
        between = n * ((means - grand) ** 2).sum(0)
        total = self.squares - n * positions * grand ** 2
        return torch.where(total > 1e-12 * self.squares.clamp_min(1e-300), between / total,
                           torch.nan).clamp(0.0, 1.0)


def feature_layers(graph: Graph) -> list[NodeLayer]:
    """The node layers of ``graph`` whose features are measured: every one but the logits that has
    a constant direction (feature 0)."""
    return [layer for layer in graph.layers if layer.name != OUTPUT and layer.has_constant]


def layer_features(model, graph, inputs: Tensor, batch_size: int = 16
                   ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
    """Batch by batch: (the batch's inputs (windows, positions), the features f = x C (float64,
    (windows, positions, r), feature 0 the constant) of every :func:`feature_layers` layer)."""
    folded = prepare_model(model, torch.float64)
    layers = feature_layers(graph)
    for batch in inputs.split(batch_size):
        with torch.no_grad():  # not around the yield: the caller's grad mode stays its own
            acts = capture(folded, batch, [layer.name for layer in layers])
        features = {}
        for layer in layers:
            x = acts[layer.name]
            if x.ndim != 3:
                raise ValueError(f"{layer.name}: no position axis (shape {tuple(x.shape)})")
            features[layer.name] = x.double() @ layer.C.double()
        yield batch, features


def position_shares(model, graph, inputs: Tensor, batch_size: int = 16) -> pd.DataFrame:
    """The table for every node layer of ``graph`` with a position axis (and a constant)."""
    layers = feature_layers(graph)
    moments = {layer.name: PositionMoments() for layer in layers}
    for _, features in layer_features(model, graph, inputs, batch_size):
        for name, values in features.items():
            moments[name].update(values)
    frames = []
    for layer in layers:
        share = moments[layer.name].position_share()[1:]  # feature 0 is the constant
        frames.append(pd.DataFrame({
            "layer": layer.name, "feature": range(1, len(share) + 1),
            "position_share": share.numpy(),
            "eigenvalue": layer.eigenvalues[1:].double().abs().numpy()}))
    return pd.concat(frames, ignore_index=True)


def read_shares(path: Path) -> dict[tuple[str, int], float]:
    """(layer, feature) -> its position share, from ``path/positions.csv`` (features without
    one, NaN, left out; the labels of the results browser and of figure 6b)."""
    return {(str(row.layer), int(row.feature)): float(row.position_share)
            for row in pd.read_csv(Path(path) / POSITIONS_FILE).itertuples(index=False)
            if pd.notna(row.position_share)}


def write_run(path: Path) -> pd.DataFrame:
    """Compute and write ``positions.csv`` for one complete run."""
    from interbasis import pipeline

    _, cfg = stored_run_config(path)
    graph = stored_graph(path)
    prepared = pipeline.prepare(cfg)
    table = position_shares(prepared.model, graph, prepared.basis_inputs)
    atomic_write_text(Path(path) / POSITIONS_FILE, table.to_csv(index=False,
                                                                float_format="%.6g"))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="language-model run folders")
    args = parser.parse_args(argv)
    for path in args.runs:
        table = write_run(path)
        medians = table.groupby("layer", sort=False)["position_share"].median()
        print(f"{path}: median position share " + ", ".join(
            f"{layer} {value:.3f}" for layer, value in medians.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
