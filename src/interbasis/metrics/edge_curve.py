"""Score the halvings a finished run's edge ablation skipped, for the edge-ablation area.

    python -m interbasis.metrics.edge_curve results/runs/modadd_paper/method=lib,seed=0 ...

Figure 10's tolerance-free edge metric (:func:`interbasis.metrics.comparison.edge_area`) needs the
score at every halving N, N // 2, ..., 1 of each transition's edges kept. Runs made with
``ablation.edge_curve=true`` (the default since it was added) have them; older runs have the
bisection's probes only, which already include every halving above the bisection's answer. This
command scores the missing ones (those below the answer: a handful per transition, each with few
edges kept, so cheap) with the run's own stored graph, model, ablation data and settings, adds
them to ``curves.csv`` and adds ``ablation/edge_area/*`` to ``summary.json``. Nothing already
stored changes: existing rows and keys are kept as they are. The curves are written before the
summary, each atomically, so an interrupted completion leaves a run that reads as before plus
some extra curve rows, and running it again finishes it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
import torch

from interbasis.basis.ablation import (
    edge_ablated_forward,
    edge_mask,
    evaluate,
    get_scorer,
    halving_schedule,
    prepare_model,
)
from interbasis.metrics.comparison import edge_area
from interbasis.results import atomic_write_text
from interbasis.results.stored import stored_graph, stored_run_config


def complete_run(path: Path) -> dict[str, float]:
    """Score the missing halvings of every transition of one run; returns the new area keys."""
    from interbasis import pipeline

    run, cfg = stored_run_config(path)
    summary = run.read_summary()
    curves = run.read_curves()
    edges = curves[curves["kind"] == "edge"]
    if edges.empty:
        return {}
    graph = stored_graph(path)
    if graph.edges is None:
        raise ValueError(f"{path}: the stored graph has no edges (ablation.edges was false)")
    prepared = pipeline.prepare(cfg)
    scorer = get_scorer(prepared.score)
    dtype = getattr(torch, cfg.ablation.dtype)
    folded = prepare_model(prepared.model, dtype, cfg.device)
    new_rows, areas = [], {}
    for index, transition in enumerate(graph.transition_names):
        rows = edges[edges["layer"] == transition]
        if rows.empty:
            continue
        delta = rows["delta"].min()
        rows = rows[rows["delta"] == delta]
        evaluations = dict(zip(rows["x"].astype(int), rows["score"].astype(float)))
        base = float(rows["base_score"].iloc[0])
        n_total = max(evaluations)
        to_constant = graph.layers[index + 1].has_constant

        def score(n: int, index: int = index, to_constant: bool = to_constant) -> float:
            assert graph.edges is not None
            mask = edge_mask(graph.edges[index], n, to_constant)
            forward = edge_ablated_forward(folded, graph, index, mask, dtype)
            return evaluate(forward, prepared.ablation_data, scorer, dtype,
                            cfg.ablation.batch_size)

        missing = [n for n in halving_schedule(n_total) if n not in evaluations]
        if missing:  # first one stored probe again: the same model, data and settings?
            probe = min(n for n in evaluations if n > 0)
            again = score(probe)
            if abs(again - evaluations[probe]) > 1e-6:
                raise RuntimeError(f"{path}: {transition} with {probe} edges kept scores "
                                   f"{again:.6g}, the stored curve {evaluations[probe]:.6g}; "
                                   "not completing it")
        for n in missing:
            evaluations[n] = score(n)
            new_rows.append({**rows.iloc[0].to_dict(), "x": n, "score": evaluations[n]})
        areas[f"ablation/edge_area/{transition}"] = (
            edge_area(evaluations, base, scorer.higher_is_better), n_total)
    if new_rows:
        merged = pd.concat([curves, pd.DataFrame(new_rows)], ignore_index=True)
        merged = merged.sort_values(["kind", "layer", "x"], kind="stable", key=_curve_order(curves))
        atomic_write_text(Path(path) / "curves.csv", merged.to_csv(index=False))
    found = {key: value for key, (value, _) in areas.items() if not math.isnan(value)}
    if len(found) == len(graph.transition_names):
        found["ablation/edge_area/total"] = (sum(a * n for a, n in areas.values())
                                             / sum(n for _, n in areas.values()))
    status = summary.pop("status")
    summary.update({k: v for k, v in found.items() if k not in summary})
    summary["status"] = status  # last, as the store writes it
    atomic_write_text(Path(path) / "summary.json", json.dumps(summary, indent=2) + "\n")
    return found


def _curve_order(curves: pd.DataFrame):
    """Sort key keeping node rows first and the layers in their stored (network) order."""
    kinds = {kind: i for i, kind in enumerate(dict.fromkeys(curves["kind"]))}
    layers = {layer: i for i, layer in enumerate(dict.fromkeys(curves["layer"]))}

    def key(column: pd.Series) -> pd.Series:
        if column.name == "kind":
            return column.map(kinds)
        if column.name == "layer":
            return column.map(layers)
        return column
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders to complete")
    args = parser.parse_args(argv)
    for path in args.runs:
        found = complete_run(path)
        print(f"{path}: " + ", ".join(f"{k.rsplit('/', 1)[-1]} {v:.4g}"
                                      for k, v in found.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
