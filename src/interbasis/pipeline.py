"""One run, top to bottom: model -> basis -> ablations -> metrics -> results store and W&B.

Each model family plugs in through ``interbasis.training.<family>.prepare(cfg) -> Prepared``: the
(trained or cached) model, the data the basis is built on, the scored ablation data, and a few
family-specific summary numbers. Everything after that is the same for every family.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from interbasis.analysis.degeneracy import relu_sync_by_layer
from interbasis.analysis.llc import llc_stage
from interbasis.analysis.partition import MODULARITY_RECORD, eps_from_results, partition_record
from interbasis.basis import build_graph, edge_ablation, node_ablation_curve
from interbasis.basis.graph import tqdm_disable
from interbasis.basis.sections import OUTPUT
from interbasis.basis.types import Graph
from interbasis.config import ConfigError, RunConfig
from interbasis.metrics import summarize
from interbasis.progress import progress_bars
from interbasis.results import RunDirectory, curves_frame
from interbasis.tracking import Tracker

log = logging.getLogger("interbasis")


@dataclass
class Prepared:
    """What a model family hands the pipeline."""

    model: nn.Module
    basis_inputs: Tensor  # inputs the basis is built on (cfg.method.basis_split)
    ablation_data: tuple[Tensor, Tensor]  # (inputs, targets) the ablations are scored on
    score: str = "accuracy"
    summary: dict[str, float | int | str] = field(default_factory=dict)
    # Family-specific analysis of the finished graph (e.g. Fourier purity of modular-addition
    # features, mean feature value per image class): each table is written as <name>.csv, and
    # plain numbers (one per run, e.g. the best class separation of one feature) join the summary.
    analyse: Callable[[nn.Module, Graph], dict[str, pd.DataFrame | float | int]] | None = None
    # Modules whose input is a ReLU's output ("output" when the model ends in one): their firing
    # patterns on the basis inputs give degeneracy/relu_sync/<layer> (docs/method.md §7).
    relu_layers: list[str] = field(default_factory=list)
    # Tables over training, each with a "step" column (e.g. a toy's polysemantic count): written
    # as <name>.csv and logged to W&B row by row at that step, as <name>/<column>.
    history: dict[str, pd.DataFrame] = field(default_factory=dict)
    # False: no basis, ablations or graph metrics; the family's own numbers are the result
    # (e.g. the toy-model sweep, whose hidden layer can be 4096 wide).
    build_graph: bool = True


def prepare(cfg: RunConfig) -> Prepared:
    family = importlib.import_module(f"interbasis.training.{cfg.model.family}")
    prepared = family.prepare(cfg)
    check_node_layers(prepared.model, cfg)
    if cfg.ablation.max_samples is not None:
        prepared.ablation_data = subsample(prepared.ablation_data, cfg.ablation.max_samples)
    return prepared


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


def run(cfg: RunConfig, run_dir: RunDirectory, tracker: Tracker) -> dict:
    """Execute one run and return its summary (written last, so a crash leaves none).

    One log line per stage; off a terminal, tqdm bars become a progress line every ~30 s
    (``interbasis.progress``).
    """
    with progress_bars(cfg.progress) as bars:
        return _run(cfg.model_copy(update={"progress": bars}), run_dir, tracker)


def _run(cfg: RunConfig, run_dir: RunDirectory, tracker: Tracker) -> dict:
    torch.set_num_threads(cfg.threads)
    log.info("stage 1: model (%s, seed %d): load from the cache or train", cfg.model.family,
             cfg.seed)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    prepared = prepare(cfg)
    timings["time/prepare_s"] = time.perf_counter() - start
    if cfg.analysis.llc:  # the learning coefficient: summary keys, traces, snapshot columns
        llc_stage(cfg, prepared, run_dir)
    for name, table in prepared.history.items():
        run_dir.write_table(name, table)
        for row in table.to_dict(orient="records"):  # first, so that W&B steps only increase
            tracker.log_metrics({f"{name}/{k}": v for k, v in row.items() if k != "step"},
                                step=int(row["step"]))
    tracker.log_metrics({k: v for k, v in prepared.summary.items() if isinstance(v, float | int)})

    start = time.perf_counter()
    log.info("stage 2: ReLU firing patterns (model ready after %.0f s)", timings["time/prepare_s"])
    relu_sync = relu_sync_by_layer(prepared.model, prepared.basis_inputs, prepared.relu_layers,
                                   batch_size=cfg.method.batch_size)
    timings["time/relu_sync_s"] = time.perf_counter() - start
    if not prepared.build_graph:
        return _finish(cfg, tracker, {**prepared.summary, **relu_sync}, timings)

    start = time.perf_counter()
    method = cfg.method
    log.info("stage 3: %s basis over %d node layers", method.name, len(cfg.model.node_layers))
    graph = build_graph(
        prepared.model, prepared.basis_inputs, list(cfg.model.node_layers), method=method.name,
        center=method.center, truncation_threshold=method.truncation_threshold,
        integration=method.integration, n_intervals=method.n_intervals,
        n_sources=method.n_sources, seed=cfg.seed, batch_size=method.batch_size,
        progress=cfg.progress, jacobian_gram=method.jacobian_rank or None,
        max_memory=method.max_memory, device=cfg.device,
        jacobian_dtype=getattr(torch, method.jacobian_dtype),
        n_probes=method.n_probes)
    timings["time/basis_s"] = time.perf_counter() - start
    run_dir.write_graph(graph, method.name)

    start = time.perf_counter()
    ablation = cfg.ablation
    log.info("stage 4: ablations on %d samples (basis took %.0f s)",
             len(prepared.ablation_data[0]), timings["time/basis_s"])
    dtype = getattr(torch, ablation.dtype)
    layers = [name for name in cfg.model.node_layers if name != OUTPUT]
    node_curves = [node_ablation_curve(prepared.model, graph, name, prepared.ablation_data,
                                       score=prepared.score, batch_size=ablation.batch_size,
                                       dtype=dtype, device=cfg.device)
                   for name in tqdm(layers, desc="node ablations",
                                    disable=tqdm_disable(cfg.progress))]
    edge_results = []
    if ablation.edges:
        edge_results = [edge_ablation(prepared.model, graph, index, prepared.ablation_data,
                                      score=prepared.score, delta=ablation.edge_delta,
                                      curve=ablation.edge_curve,
                                      batch_size=ablation.batch_size, dtype=dtype,
                                      device=cfg.device)
                        for index in tqdm(range(len(graph.edges)), desc="edge ablations",
                                          disable=tqdm_disable(cfg.progress))]
    timings["time/ablation_s"] = time.perf_counter() - start

    log.info("stage 5: metrics and result files (ablations took %.0f s)",
             timings["time/ablation_s"])
    curves = curves_frame(node_curves, edge_results)
    run_dir.write_curves(curves)
    eps = eps_from_results(graph, edge_results) if graph.edges is not None else None
    if eps is not None:  # the partition itself, for figures (summarize keeps only Q)
        run_dir.write_json(MODULARITY_RECORD, partition_record(
            graph, eps[1], eps[0], ablation.modularity_resolutions))
    analysis_summary = {}
    if prepared.analyse is not None:
        for name, result in prepared.analyse(prepared.model, graph).items():
            if isinstance(result, pd.DataFrame):
                run_dir.write_table(name, result)
            else:
                analysis_summary[name] = result
    tracker.log_curves(curves)
    summary = summarize(graph, node_curves, edge_results, deltas=ablation.deltas,
                        tau=method.truncation_threshold)
    summary.update(prepared.summary)
    summary.update(relu_sync)
    summary["ablation/n_samples"] = len(prepared.ablation_data[0])
    summary.update(analysis_summary)
    return _finish(cfg, tracker, summary, timings)


def _finish(cfg: RunConfig, tracker: Tracker, summary: dict, timings: dict[str, float]) -> dict:
    summary.update({k: round(v, 3) for k, v in timings.items()})
    summary.update(model=cfg.model.family, method=cfg.method.name, seed=cfg.seed,
                   experiment=cfg.experiment_name)
    tracker.set_summary({k: v for k, v in summary.items()
                         if not (isinstance(v, float) and math.isnan(v))})
    return summary
