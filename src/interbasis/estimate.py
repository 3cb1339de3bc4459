"""Predict the wall time and peak memory of a run before doing it.

Usage::

    python -m interbasis.estimate experiment=modadd_paper method=lib threads=1
    python -m interbasis.estimate experiment=tiny_gpt --samples 8 16

The same overrides as ``python -m interbasis.run``. The run's model and data are prepared as the
run would (a cached model is loaded, an uncached one is trained first), then the basis and edges
are built on two prefixes of the basis inputs (``--samples``, default 1/8 and 1/4 of them, at
least 64 and 128), the first twice, and each phase's time is fitted as a + b N per node layer on
the two warm builds and extrapolated to the run's N (kept between the larger measurement and its
proportional scaling, so timing noise on a loaded machine cannot blow it up). A run's build is
the first in its process and pays the first touch of its memory (page faults: 26 of a SmolLM2
block's 42 s here), which the first, cold build measures, scaled by the larger prefix's peak
memory over the smaller's; the fixed setup (the folded copy, the digests) is added once. The
ablations are timed on one evaluation of each kind (the faster of two when quick) and multiplied
by the number of evaluations the run makes. Peak memory is the resident (or CUDA)
peak above the prepared model and data, extrapolated to a full batch but never past the memory
budget (which cuts the Jacobian work into chunks): an upper bound.
Caveats: a prefix can cap ranks (a rank cannot exceed the samples x positions seen), which makes
the prediction low for generic sections whose cost grows with the next layer's rank.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import Tensor

from interbasis import pipeline
from interbasis.basis import ablation
from interbasis.basis.memory import memory_budget
from interbasis.basis.sections import OUTPUT
from interbasis.config import validate
from interbasis.profiling import PeakMemory, build_once, resident_mb
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


def phases(timings: dict) -> float:
    """Seconds of a build's timed phases (build_graph's own timings)."""
    return timings["statistics"] + timings["basis"] + timings["edges"]


def _timed(evaluation: Callable[[], object], repeat_below: float = 3.0) -> float:
    """Seconds of one call: the faster of two when the first took under ``repeat_below``
    seconds. A single call on this shared machine was up to 3x slow now and then (the same
    modadd evaluation timed 0.86 and 2.08 s in two estimates a few minutes apart); a slow call
    is noise, and the first also warms caches and lazy setup, which a long run amortises."""
    start = time.perf_counter()
    evaluation()
    seconds = time.perf_counter() - start
    if seconds >= repeat_below:
        return seconds
    start = time.perf_counter()
    evaluation()
    return min(seconds, time.perf_counter() - start)


def edge_kept_counts(answer: int, n_total: int, curve: bool, tolerance: int = 1) -> list[int]:
    """The kept-edge counts ``edge_ablation`` scores, in order, when the smallest count within
    delta is ``answer`` (``answer > n_total``: none is): the bisection's probes, which depend only
    on the answer because within() is monotone, then (``curve``) the halvings it did not visit."""
    seen: dict[int, None] = {}

    def within(n: int) -> bool:
        seen.setdefault(n)
        return n >= answer

    ablation.bisect_smallest(within, n_total, tolerance)
    for n in ablation.halving_schedule(n_total) if curve else []:
        seen.setdefault(n)
    return list(seen)


def coarse_answer(within: Callable[[int], bool], n_total: int, steps: int = 3) -> int:
    """The smallest n with within(n), to a factor 2**-steps: halve from n_total while within
    holds (the counts the real bisection scores first), then ``steps`` bisection steps."""
    if within(0):
        return 0
    if not within(n_total):
        return n_total + 1
    high = n_total
    while high > 1 and within(high // 2):
        high //= 2
    low = high // 2  # fails (0 failed above)
    for _ in range(steps):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        if within(middle):
            high = middle
        else:
            low = middle
    return (low + high + 1) // 2


def answer_probe(data: tuple[Tensor, Tensor], fraction: float) -> tuple[Tensor, Tensor]:
    """The first ``fraction`` of the scored predictions: whole samples, and for language-model
    windows (targets shaped as the inputs) the first positions of the windows once a few
    windows hold them (a causal model predicts them as in the full window)."""
    inputs, targets = data
    n = len(inputs)
    windows = targets.ndim >= 2 and targets.shape == inputs.shape
    per_sample = targets.shape[1] if windows else 1
    wanted = max(1, math.ceil(fraction * n * per_sample))
    samples = min(n, math.ceil(wanted / per_sample))
    positions = min(per_sample, math.ceil(wanted / samples))
    if not windows:
        return inputs[:samples], targets[:samples]
    return inputs[:samples, :positions], targets[:samples, :positions]


@dataclass
class EdgePlan:
    """The predicted edge ablation of one transition (printed by ``main``)."""

    transition: str
    n_total: int
    answer: int  # predicted smallest count within delta (n_total + 1: none)
    counts: list[int]  # the counts the run will score
    few_s: float  # one evaluation keeping 1 edge, on all the ablation data
    all_s: float  # one keeping all n_total
    probe_s: float  # what predicting the answer cost here

    @property
    def seconds(self) -> float:
        slope = max(0.0, self.all_s - self.few_s) / max(1, self.n_total)
        return sum(self.few_s + slope * n for n in self.counts)


def ablation_seconds(cfg, prepared, graph, answer_fraction: float = 0.125
                     ) -> tuple[dict[str, float], list[EdgePlan]]:
    """Predicted node and edge ablation time per node layer, and the edge ablations' plans.

    Evaluations are timed on up to 4,096 ablation samples and scaled to all of them. Node
    ablation: the base score and one evaluation per k of the schedule below the rank. Edge
    ablation: the base score, then one evaluation per count of :func:`edge_kept_counts`, each
    costing few + b x (edges kept), timed at 1 and at all edges; the answer is found by
    :func:`coarse_answer` on the prefix graph and the first ``answer_fraction`` of the data.
    """
    inputs, targets = prepared.ablation_data
    n_abl, probe = len(inputs), min(len(inputs), 4096)
    scale = n_abl / probe
    subset = (inputs[:probe], targets[:probe])
    small = answer_probe(prepared.ablation_data, answer_fraction)
    dtype = getattr(torch, cfg.ablation.dtype)
    device = ablation.check_device(cfg.device)
    scorer = ablation.get_scorer(prepared.score)
    start = time.perf_counter()
    folded = ablation.prepare_model(prepared.model, dtype, device)
    fold = time.perf_counter() - start  # every node and edge ablation folds its own copy
    batch = cfg.ablation.batch_size

    def score(forward: Callable[[Tensor], Tensor], data: tuple[Tensor, Tensor]) -> float:
        return ablation.evaluate(forward, data, scorer, dtype, batch, device)

    one_node = _timed(lambda: score(folded, subset)) * scale
    out: dict[str, float] = {}
    plans: list[EdgePlan] = []
    for index, layer in enumerate(graph.layers):
        if layer.name == OUTPUT:
            continue
        # the base score, then every k below the rank (k >= r reuses the base score)
        n_evals = 1 + sum(k < layer.rank for k in ablation.ablation_schedule(layer.width))
        out[layer.name] = fold + one_node * n_evals
        if cfg.ablation.edges and graph.edges is not None and index < len(graph.edges):
            plan = edge_plan(graph, index, folded, score, subset, small, scorer,
                             cfg.ablation.edge_delta, cfg.ablation.edge_curve, dtype)
            plan.few_s, plan.all_s = plan.few_s * scale, plan.all_s * scale
            plans.append(plan)
            out[layer.name] += fold + one_node + plan.seconds
    return out, plans


def n_edges(graph, index: int) -> int:
    """The non-constant edges of transition ``index``, the count edge_ablation bisects over."""
    return ablation.ablatable_edges(graph.edges[index],
                                    graph.layers[index + 1].has_constant).numel()


def edge_plan(graph, index: int, folded, score, timing_data, answer_data, scorer, delta: float,
              curve: bool, dtype: torch.dtype) -> EdgePlan:
    """One transition's :class:`EdgePlan`, its evaluation times on ``timing_data``."""
    edges = graph.edges[index]
    to_constant = graph.layers[index + 1].has_constant
    n_total = n_edges(graph, index)

    def forward_keeping(n_keep: int) -> Callable[[Tensor], Tensor]:
        mask = ablation.edge_mask(edges, n_keep, to_constant)
        return ablation.edge_ablated_forward(folded, graph, index, mask, dtype)

    start = time.perf_counter()
    base = score(folded, answer_data)
    answer = coarse_answer(
        lambda n: scorer.degradation(base, score(forward_keeping(n), answer_data)) <= delta,
        n_total)
    probe_s = time.perf_counter() - start
    few = _timed(lambda: score(forward_keeping(1), timing_data))
    every = _timed(lambda: score(forward_keeping(n_total), timing_data))
    return EdgePlan(graph.transition_names[index], n_total, answer,
                    edge_kept_counts(answer, n_total, curve), few, every, probe_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="run overrides, as for interbasis.run")
    parser.add_argument("--samples", type=int, nargs=2, default=None,
                        help="the two prefix sizes timed (default N/8 and N/4)")
    parser.add_argument("--answer-fraction", type=float, default=0.125,
                        help="share of the ablation data the edge answers are predicted on")
    args = parser.parse_args(argv)
    if not 0 < args.answer_fraction <= 1:
        parser.error(f"--answer-fraction must be in (0, 1], got {args.answer_fraction}")
    began = time.perf_counter()
    cfg = compose_run(args.overrides)
    torch.set_num_threads(cfg.threads)
    prepared = pipeline.prepare(cfg)
    n = len(prepared.basis_inputs)
    if args.samples:
        n1, n2 = args.samples
    else:  # small sets (an LM's few windows): half of them, then all of them
        n2 = min(n, max(128, n // 4))
        n1 = max(1, min(max(64, n // 8), n2 // 2))
    # cold, then warm: a run's one build pays the first touch of its memory (page faults, up
    # to half of a large model's build here), which a second build in the same process reuses
    # (basis/memory.py keeps freed heap); the per-layer fit uses the two warm builds
    runs = []
    cuda = torch.device(cfg.device).type == "cuda"
    baseline = 0.0 if cuda else resident_mb()
    for size in (n1, n1, n2):
        with PeakMemory(cfg.device) as memory:
            graph, timings = build_once(cfg, prepared, size)
        # above the prepared model and data: the resident peak less the resident before the
        # first build (glibc gives some freed heap back between builds, so a build's own rise
        # is no measure), or on a GPU each build's peak of live tensors
        runs.append((graph, timings, memory.extra_mb if cuda else memory.peak - baseline))
    (_, cold, p_cold), (_, t1, p1), (graph, t2, p2) = runs
    p1 = max(p_cold, p1)
    p2 = max(p1, p2)
    abl, plans = ablation_seconds(cfg, prepared, graph, args.answer_fraction)
    batch = min(n, cfg.method.batch_size)
    # memory grows with the samples of a batch until the memory budget cuts the Jacobian work
    # into chunks (modadd here: 227 MB at N = 478, 429 at 957, 592 at 3,830), so a linear
    # extrapolation is capped at the budget: an upper bound
    budget = memory_budget(ablation.check_device(cfg.device), cfg.method.max_memory) / 2**20
    peak = p2 if n2 >= batch else min(p2 + max(0.0, (p2 - p1) / max(1, n2 - n1)) * (batch - n2),
                                      max(p2, budget))
    setup = max(0.0, t2["wall"] - phases(t2))  # folded copy, digests, spectra: fixed
    # the first touch grows with the memory touched: scaled by the larger prefix's peak over
    # the smaller's (not by the extrapolated bound, which overshoots)
    first_touch = (max(0.0, cold["wall"] - t1["wall"])
                   * min(max(1.0, p2 / max(p1, 1.0)), n / max(n1, 1)))
    print(f"estimate for {cfg.experiment_name} ({cfg.method.name}, N = {n}, device "
          f"{cfg.device}, {cfg.threads} thread(s)), timed on N = {n1} and {n2}")
    print(f"{'node layer':<32} {'basis s':>8} {'edges s':>8} {'ablation s':>10}")
    total = linear_fit(n1, t1["statistics"], n2, t2["statistics"], n) + setup + first_touch
    for layer in graph.layers:
        name = layer.name
        basis = linear_fit(n1, t1["per_layer"]["basis"].get(name, 0.0), n2,
                           t2["per_layer"]["basis"].get(name, 0.0), n)
        edges = linear_fit(n1, t1["per_layer"]["edges"].get(name, 0.0), n2,
                           t2["per_layer"]["edges"].get(name, 0.0), n)
        total += basis + edges + abl.get(name, 0.0)
        print(f"{name:<32} {basis:>8.1f} {edges:>8.1f} {abl.get(name, 0.0):>10.1f}")
    for plan in plans:
        answer = "none" if plan.answer > plan.n_total else str(plan.answer)
        print(f"edges {plan.transition}: {plan.n_total} edges, predicted answer {answer} "
              f"(found in {plan.probe_s:.1f} s), {len(plan.counts)} evaluations of "
              f"{plan.few_s:.2f} s (1 kept) to {plan.all_s:.2f} s (all kept): {plan.seconds:.1f} s")
    print(f"setup {setup:.1f} s and the first touch of the build's memory {first_touch:.1f} s "
          f"(a cold build of N = {n1} took {cold['wall']:.1f} s, a warm one {t1['wall']:.1f} s)")
    build = total - sum(abl.values())
    print(f"predicted: build {build:.1f} s, ablations {sum(abl.values()):.1f} s, "
          f"total {total:.1f} s; peak memory up to {peak:.0f} MB above the prepared model and data")
    print(f"(this estimate took {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
