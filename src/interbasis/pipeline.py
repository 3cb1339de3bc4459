"""One run, top to bottom: prepare -> over training -> basis -> ablate -> analyse -> summarize ->
record.

The model family (``interbasis.families``, by ``model.family``) prepares the run: the trained or
cached model, the data the basis is built on, the scored ablation data and its own summary
numbers. Everything after that is the same for every family. Nothing is written while the run
works: :class:`Outputs` collects the files and W&B logs, and :func:`record` writes them once at
the end; the runner then writes summary.json last (the store's commit marker), so a run that
fails or is killed leaves no result that looks complete.
"""

from __future__ import annotations

import difflib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from interbasis import families, ranks
from interbasis.analysis.degeneracy import relu_sync_by_layer
from interbasis.analysis.llc import llc_stage
from interbasis.analysis.partition import MODULARITY_RECORD, eps_from_results, partition_record
from interbasis.basis import edge_ablation, node_ablation_curve
from interbasis.basis.graph import tqdm_disable
from interbasis.basis.sections import OUTPUT
from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve
from interbasis.config import ConfigError, RunConfig
from interbasis.metrics import summarize
from interbasis.progress import progress_bars
from interbasis.results import RunDirectory, curves_frame
from interbasis.tracking import Tracker
from interbasis.training.family import Family, Prepared

log = logging.getLogger("interbasis")

__all__ = ["Outputs", "Prepared", "prepare", "record", "run", "subsample"]


@dataclass
class Outputs:
    """Everything a run writes, kept until :func:`record` writes it once."""

    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    graph: Graph | None = None
    curves: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # <name>.csv
    jsons: dict[str, Any] = field(default_factory=dict)  # <name>.json
    history: dict[str, pd.DataFrame] = field(default_factory=dict)  # also logged by step
    metrics: dict[str, float | int] = field(default_factory=dict)  # logged once, before curves

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        """A table for ``<name>.csv`` (RunDirectory's call, so stages may write through this)."""
        self.tables[name] = frame


def run(cfg: RunConfig, run_dir: RunDirectory, tracker: Tracker) -> dict:
    """Execute one run and return its summary (the runner writes it last, so a crash leaves none).

    One log line per stage; off a terminal, tqdm bars become a progress line every ~30 s
    (``interbasis.progress``).
    """
    with progress_bars(cfg.progress) as bars:
        cfg = cfg.model_copy(update={"progress": bars})
        torch.set_num_threads(cfg.threads)
        family = families.family(cfg.model.family)
        out = Outputs()

        log.info("stage 1: model (%s, seed %d): load from the cache or train", family.name,
                 cfg.seed)
        with _timed(out, "prepare"):
            prepared = prepare(cfg, family)
        over_training(cfg, family, prepared, out)

        log.info("stage 2: ReLU firing patterns (model ready after %.0f s)",
                 out.timings["time/prepare_s"])
        with _timed(out, "relu_sync"):
            relu_sync = relu_sync_by_layer(prepared.model, prepared.basis_inputs,
                                           family.relu_layers(prepared.model),
                                           batch_size=cfg.method.batch_size)
        out.summary.update(prepared.summary)
        out.summary.update(relu_sync)
        if wants_graph(cfg):
            log.info("stage 3: %s basis over %d node layers", cfg.method.name,
                     len(cfg.model.node_layers))
            with _timed(out, "basis"):
                # torchrun: this rank's shard, merged across ranks; resumable from the run
                # directory's build/ (interbasis.ranks)
                graph = ranks.build(cfg, prepared, ranks.checkpoint_dir(run_dir.path),
                                    run_dir.read_meta().get("overrides"))
            log.info("stage 4: ablations on %d samples (basis took %.0f s)",
                     len(prepared.ablation_data[0]), out.timings["time/basis_s"])
            with _timed(out, "ablation"):
                node_curves, edge_results = ablate(cfg, prepared, graph)
            log.info("stage 5: analysis and metrics (ablations took %.0f s)",
                     out.timings["time/ablation_s"])
            analyse(cfg, prepared, graph, node_curves, edge_results, out)
        summary = {**out.summary, **{k: round(v, 3) for k, v in out.timings.items()},
                   "model": cfg.model.family, "method": cfg.method.name, "seed": cfg.seed,
                   "experiment": cfg.experiment_name}
        record(out, summary, run_dir, tracker)
        return summary


def prepare(cfg: RunConfig, family: Family | None = None) -> Prepared:
    """The family's model and data, its node layers checked and its ablation data subsampled."""
    family = family or families.family(cfg.model.family)
    if not isinstance(cfg, family.schema):  # its prepare reads the family's own sections
        raise ConfigError(f"config error: the {family.name} family runs a "
                          f"{family.schema.__name__}, not a {type(cfg).__name__} (validate the "
                          "config with interbasis.config.validate)")
    prepared = family.prepare(cfg)
    check_node_layers(prepared.model, cfg)
    if cfg.ablation.max_samples is not None:
        prepared.ablation_data = subsample(prepared.ablation_data, cfg.ablation.max_samples)
    return prepared


def over_training(cfg: RunConfig, family: Family, prepared: Prepared, out: Outputs) -> None:
    """Measures over training: the family's tables (degeneracy at every kept snapshot, a toy's
    training curve), then the learning coefficient (of the model, and at every snapshot)."""
    start = time.perf_counter()
    if family.over_training is not None:
        prepared.history.update(family.over_training(cfg, prepared))
    if cfg.analysis.llc:  # summary keys into prepared.summary, traces into out.tables
        llc_stage(cfg, prepared, out)
    out.history.update(prepared.history)
    out.metrics.update({k: v for k, v in prepared.summary.items() if isinstance(v, float | int)})
    if prepared.history or cfg.analysis.llc:
        log.info("over training: %s (%.0f s)", ", ".join(prepared.history) or "llc",
                 time.perf_counter() - start)


def wants_graph(cfg: RunConfig) -> bool:
    """False for a run whose result is the family's own numbers (``model.graph=false``, the toy
    sweep) or an LLC-only run (``analysis.graph=false``)."""
    return getattr(cfg.model, "graph", True) and cfg.analysis.graph


def ablate(cfg: RunConfig, prepared: Prepared, graph: Graph
           ) -> tuple[list[NodeAblationCurve], list[EdgeAblationResult]]:
    """Node ablation curves of every rotated layer and (``ablation.edges``) the edge ablations."""
    ablation = cfg.ablation
    settings = dict(score=prepared.score, batch_size=ablation.batch_size,
                    dtype=getattr(torch, ablation.dtype), device=cfg.device)
    layers = [name for name in cfg.model.node_layers if name != OUTPUT]
    node_curves = [node_ablation_curve(prepared.model, graph, name, prepared.ablation_data,
                                       **settings)
                   for name in tqdm(layers, desc="node ablations",
                                    disable=tqdm_disable(cfg.progress))]
    edge_results = []
    if ablation.edges:
        edge_results = [edge_ablation(prepared.model, graph, index, prepared.ablation_data,
                                      delta=ablation.edge_delta, curve=ablation.edge_curve,
                                      **settings)
                        for index in tqdm(range(len(graph.edges or [])), desc="edge ablations",
                                          disable=tqdm_disable(cfg.progress))]
    return node_curves, edge_results


def analyse(cfg: RunConfig, prepared: Prepared, graph: Graph,
            node_curves: list[NodeAblationCurve], edge_results: list[EdgeAblationResult],
            out: Outputs) -> None:
    """The graph's metrics, its modularity partition, and the family's analysis of it."""
    out.graph = graph
    out.curves = curves_frame(node_curves, edge_results)
    eps = eps_from_results(graph, edge_results) if graph.edges is not None else None
    if eps is not None:  # the partition itself, for figures (summarize keeps only Q)
        out.jsons[MODULARITY_RECORD] = partition_record(
            graph, eps[1], eps[0], cfg.ablation.modularity_resolutions)
    family_numbers = {}
    if prepared.analyse is not None:
        for name, result in prepared.analyse(prepared.model, graph).items():
            if isinstance(result, pd.DataFrame):
                out.tables[name] = result
            else:
                family_numbers[name] = result
    metrics = summarize(graph, node_curves, edge_results, deltas=cfg.ablation.deltas,
                        tau=cfg.method.truncation_threshold)
    # the family's numbers and the ReLU syncs (already in out.summary) after the graph metrics
    out.summary = {**metrics, **out.summary,
                   "ablation/n_samples": len(prepared.ablation_data[0]), **family_numbers}


def record(out: Outputs, summary: dict, run_dir: RunDirectory, tracker: Tracker) -> None:
    """Write the run's files to the store and its logs to the tracker, once (summary.json is the
    runner's, after this)."""
    if out.graph is not None:
        run_dir.write_graph(out.graph, out.graph.method)
    if out.curves is not None:
        run_dir.write_curves(out.curves)
    for name, obj in out.jsons.items():
        run_dir.write_json(name, obj)
    for name, table in {**out.history, **out.tables}.items():
        run_dir.write_table(name, table)
    for name, table in out.history.items():
        for row in table.to_dict(orient="records"):  # first, so that W&B steps only increase
            tracker.log_metrics({f"{name}/{k}": v for k, v in row.items() if k != "step"},
                                step=int(row["step"]))
    tracker.log_metrics(out.metrics)
    if out.curves is not None:
        tracker.log_curves(out.curves)
    tracker.set_summary({k: v for k, v in summary.items()
                         if not (isinstance(v, float) and math.isnan(v))})


def check_node_layers(model: nn.Module, cfg: RunConfig) -> None:
    """ConfigError (one line) naming node layers that are not modules of the built model."""
    modules = dict(model.named_modules())
    missing = [name for name in cfg.model.node_layers if name != OUTPUT and name not in modules]
    if missing:
        close = sorted({match for name in missing
                        for match in difflib.get_close_matches(name, modules, n=1)})
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"config error: model.node_layers: {', '.join(map(repr, missing))} "
                          f"not in the {cfg.model.family} model{hint}")


def subsample(data: tuple[Tensor, Tensor], n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed random subset of n (input, target) pairs, the same for every method and seed,
    so that runs compared with each other ablate the same samples."""
    inputs, targets = data
    if n >= len(inputs):
        return data
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))[:n]
    index = order.sort().values
    return inputs[index], targets[index]


class _timed:
    """``with _timed(out, "basis"):`` records ``time/basis_s``."""

    def __init__(self, out: Outputs, stage: str) -> None:
        self.out, self.key = out, f"time/{stage}_s"

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.out.timings[self.key] = time.perf_counter() - self.start
