"""Predict the wall time and peak memory of a run before doing it.

Usage::

    python -m interbasis.estimate experiment=modadd_paper method=lib threads=1
    python -m interbasis.estimate experiment=tiny_gpt --samples 8 16

The same overrides as ``python -m interbasis.run``. The run's model and data are prepared as the
run would (a cached model is loaded, an uncached one is trained first), then the basis and edges
are built on two prefixes of the basis inputs (``--samples``, default 1/8 and 1/4 of them, at
least 64 and 128) and each phase's time is fitted as a + b N per node layer and extrapolated to
the run's N (kept between the larger measurement and its proportional scaling, so timing noise
on a loaded machine cannot blow it up); the ablations are timed on one evaluation of each kind
and multiplied by the number of evaluations the run makes. Peak memory is the resident (or CUDA)
peak above the prepared model and data, which the memory budget keeps from growing with N once a
batch is full.
Caveats: a prefix can cap ranks (a rank cannot exceed the samples x positions seen), which makes
the prediction low for generic sections whose cost grows with the next layer's rank.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from interbasis import pipeline
from interbasis.basis import ablation
from interbasis.basis.sections import OUTPUT
from interbasis.config import validate
from interbasis.profiling import PeakMemory, build_once
from interbasis.run import CONFIG_DIR


def compose_run(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        container = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
        if not isinstance(container, dict):  # a composed config is always a mapping
            raise TypeError(f"the composed config is a {type(container).__name__}, not a mapping")
        return validate(container)


def linear_fit(n1: int, t1: float, n2: int, t2: float, n: int) -> float:
    """a + b n through (n1, t1) and (n2, t2), between t2 and the proportional t2 n / n2."""
    if n2 <= n1:
        return t2 * n / max(n2, 1)
    slope = max(0.0, (t2 - t1) / (n2 - n1))
    return min(max(t2, t2 + slope * (n - n2)), t2 * n / max(n2, 1))


def _timed(evaluation) -> float:
    """Seconds of the second of two calls (the first warms caches and lazy setup)."""
    evaluation()
    start = time.perf_counter()
    evaluation()
    return time.perf_counter() - start


def ablation_seconds(cfg, prepared, graph) -> dict[str, float]:
    """Predicted node and edge ablation time per node layer: one evaluation of each kind timed on
    up to 4,096 ablation samples, times the evaluations the run makes, scaled to all samples."""
    inputs, targets = prepared.ablation_data
    n_abl, probe = len(inputs), min(len(inputs), 4096)
    subset = (inputs[:probe], targets[:probe])
    dtype = getattr(torch, cfg.ablation.dtype)
    device = ablation.check_device(cfg.device)
    scorer = ablation.get_scorer(prepared.score)
    folded = ablation.prepare_model(prepared.model, dtype, device)
    batch = cfg.ablation.batch_size
    one_node = _timed(lambda: ablation.evaluate(folded, subset, scorer, dtype, batch, device))
    out: dict[str, float] = {}
    for index, layer in enumerate(graph.layers):
        if layer.name == OUTPUT:
            continue
        # the base score, then every k below the rank (k >= r reuses the base score)
        n_evals = 1 + sum(k < layer.rank for k in ablation.ablation_schedule(layer.width))
        seconds = one_node * n_evals * n_abl / probe
        if cfg.ablation.edges and graph.edges is not None and index < len(graph.edges):
            def one_edge_eval(n_keep: int, index: int = index) -> float:
                mask = ablation.edge_mask(graph.edges[index], n_keep,
                                          graph.layers[index + 1].has_constant)
                forward = ablation.edge_ablated_forward(folded, graph, index, mask, dtype)
                return _timed(lambda: ablation.evaluate(forward, subset, scorer, dtype, batch,
                                                        device))

            # masked fast paths cost ~ a + b (kept edges): time both ends. The bisection makes
            # both ends, then one evaluation per halving; for a sparse answer the kept counts
            # halve too, so they add up to about 2x all edges on top of the fixed costs.
            n_edges = graph.edges[index].numel()
            n_bisect = math.ceil(math.log2(max(n_edges, 2))) + 2
            few, all_kept = one_edge_eval(1), one_edge_eval(n_edges)
            seconds += (one_node + few * n_bisect + 2 * max(0.0, all_kept - few)) * n_abl / probe
        out[layer.name] = seconds
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="run overrides, as for interbasis.run")
    parser.add_argument("--samples", type=int, nargs=2, default=None,
                        help="the two prefix sizes timed (default N/16 and N/8)")
    args = parser.parse_args(argv)
    cfg = compose_run(args.overrides)
    torch.set_num_threads(cfg.threads)
    prepared = pipeline.prepare(cfg)
    n = len(prepared.basis_inputs)
    if args.samples:
        n1, n2 = args.samples
    else:  # small sets (an LM's few windows): half of them, then all of them
        n2 = min(n, max(128, n // 4))
        n1 = max(1, min(max(64, n // 8), n2 // 2))
    runs = []
    for size in (n1, n2):
        with PeakMemory(cfg.device) as memory:
            graph, timings = build_once(cfg, prepared, size)
        runs.append((graph, timings, memory.extra_mb))
    (_, t1, m1), (graph, t2, m2) = runs
    abl = ablation_seconds(cfg, prepared, graph)
    batch = min(n, cfg.method.batch_size)
    # the Jacobian passes keep freed heap (basis/memory.py), so the second build may reuse the
    # first's memory without growing: its peak is the larger of the two
    m2 = max(m1, m2)
    peak = m2 if n2 >= batch else m2 + max(0.0, (m2 - m1) / max(1, n2 - n1)) * (batch - n2)
    print(f"estimate for {cfg.experiment_name} ({cfg.method.name}, N = {n}, device "
          f"{cfg.device}, {cfg.threads} thread(s)), timed on N = {n1} and {n2}")
    print(f"{'node layer':<32} {'basis s':>8} {'edges s':>8} {'ablation s':>10}")
    total = linear_fit(n1, t1["statistics"], n2, t2["statistics"], n)
    for layer in graph.layers:
        name = layer.name
        basis = linear_fit(n1, t1["per_layer"]["basis"].get(name, 0.0), n2,
                           t2["per_layer"]["basis"].get(name, 0.0), n)
        edges = linear_fit(n1, t1["per_layer"]["edges"].get(name, 0.0), n2,
                           t2["per_layer"]["edges"].get(name, 0.0), n)
        total += basis + edges + abl.get(name, 0.0)
        print(f"{name:<32} {basis:>8.1f} {edges:>8.1f} {abl.get(name, 0.0):>10.1f}")
    build = total - sum(abl.values())
    print(f"predicted: build {build:.1f} s, ablations {sum(abl.values()):.1f} s, "
          f"total {total:.1f} s; peak memory {peak:.0f} MB above the prepared model and data")


if __name__ == "__main__":
    main()
