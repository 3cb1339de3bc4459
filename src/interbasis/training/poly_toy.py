"""Training the incidental-polysemanticity toy (docs/experiments.md E5), with a checkpoint cache.

Full-batch AdamW on the identity batch: lr 1e-3, 7,500 steps, lambda 1e-3 on ||W||_1. The
gradient is analytic (:func:`interbasis.models.poly_toy.toy_gradient`, two matmuls per step
instead of autograd's three; tested against autograd), so a step costs two n x n x m float32
matmuls and the optimizer. The cache key (:meth:`PolyToyRun.trajectory`) holds everything,
steps included: a toy trains in minutes, so no resuming.

    python -m interbasis.run experiment=poly_toy model.m=1024 seed=3
    python -m interbasis.run -m sweep=paper_poly

From Python: ``train(PolyToyRun(n=256, m=1024, seed=0))``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from interbasis.basis.fold import frozen_folded_copy
from interbasis.basis.sections import capture
from interbasis.basis.types import Graph
from interbasis.config import RunConfig
from interbasis.models.poly_toy import (
    as_sequential,
    init_weights,
    polysemantic_neurons,
    represented,
    toy_gradient,
    toy_loss,
    weight_stats,
)
from interbasis.pipeline import Prepared
from interbasis.training.cache import model_cache_dir
from interbasis.training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint

FAMILY = "poly_toy"
HISTORY = "toy_training"  # the training-curve table: <run>/toy_training.csv, W&B toy_training/*
HIDDEN = "1"  # node layer of the hidden activations x W in as_sequential's names
PURE = 0.9  # a basis feature with this share of its power on one input "is" that input feature


@dataclass(frozen=True)
class PolyToyRun:
    """One toy: sizes, seed and optimisation (all of it is the cache key)."""

    n: int = 256
    m: int = 256
    seed: int = 0
    steps: int = 7500
    lr: float = 1e-3
    l1_lambda: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    log_every: int = field(default=250, compare=False)
    threads: int | None = field(default=None, compare=False)

    def trajectory(self) -> dict:
        settings = asdict(self)
        for runtime in ("log_every", "threads"):
            settings.pop(runtime)
        return {"family": FAMILY, **settings, "betas": list(self.betas)}


@dataclass
class ToyResult:
    W: Tensor  # (n, m) float32
    history: pd.DataFrame  # step, loss terms and counts every log_every steps
    steps_per_s: float  # nan for a cache hit
    path: Path | None
    steps_trained: int


def train(run: PolyToyRun, log: Callable[[str], None] | None = None) -> ToyResult:
    """Train from the N(0, 1/m) init; returns the final W and the training curve."""
    if run.steps < 0 or run.log_every < 1:
        raise ValueError("steps must be >= 0 and log_every >= 1")
    previous_threads = torch.get_num_threads()
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    try:
        return _train(run, log or (lambda line: None))
    finally:
        torch.set_num_threads(previous_threads)


def _train(run: PolyToyRun, log: Callable[[str], None]) -> ToyResult:
    W = nn.Parameter(init_weights(run.n, run.m, run.seed))
    # fused: one kernel for the whole update (as the modadd loop); the gradient is set by hand
    optimizer = torch.optim.AdamW([W], lr=run.lr, betas=run.betas,
                                  weight_decay=run.weight_decay, fused=True)
    rows: list[dict] = []

    def record(step: int) -> None:
        with torch.no_grad():
            error, l1 = toy_loss(W, run.l1_lambda)
        loss = float(error + l1)
        if not np.isfinite(loss):
            raise RuntimeError(f"training diverged: loss {loss} at step {step} "
                               f"(n {run.n}, m {run.m}, seed {run.seed}, lr {run.lr})")
        on = represented(W.detach())
        rows.append({"step": step, "loss": loss, "reconstruction": float(error),
                     "l1": float(l1), "polysemantic_neurons": polysemantic_neurons(W.detach()),
                     "features_represented": int((on.sum(dim=1) > 0).sum())})
        log(f"step {step:>5}/{run.steps}  loss {loss:.4f}  polysemantic "
            f"{rows[-1]['polysemantic_neurons']}")

    record(0)
    started = time.perf_counter()
    for step in range(1, run.steps + 1):
        W.grad = toy_gradient(W.detach(), run.l1_lambda)
        optimizer.step()
        if step % run.log_every == 0 or step == run.steps:
            record(step)
    elapsed = time.perf_counter() - started
    rate = run.steps / elapsed if run.steps and elapsed > 0 else float("nan")
    return ToyResult(W.detach().clone(), pd.DataFrame(rows), rate, None, run.steps)


def load_or_train(run: PolyToyRun, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = None) -> ToyResult:
    """The trained toy from the cache, or trained now and saved there."""
    path = checkpoint_path(checkpoint_dir, FAMILY, run.seed, run.trajectory())
    if path.exists():
        checkpoint = load_checkpoint(path)
        return ToyResult(checkpoint["W"], pd.DataFrame(checkpoint["history"]), float("nan"),
                         path, 0)
    result = train(run, log)
    save_checkpoint(path, {"family": FAMILY, "seed": run.seed, "step": run.steps,
                           "trajectory": run.trajectory(), "W": result.W,
                           "history": result.history.to_dict(orient="list"),
                           "steps_per_s": result.steps_per_s,
                           "torch_version": str(torch.__version__)})
    result.path = path
    return result


def feature_purity(features: Tensor) -> Tensor:  # features: Float[Tensor, "n_inputs r"]
    """Per column: the share of its centred power over the one-hot inputs held by its top input.

    1 when a feature is active on a single input feature, 1/k when spread evenly over k.
    """
    centred = features - features.mean(dim=0, keepdim=True)
    power = centred.square()
    total = power.sum(dim=0)
    return torch.where(total > 0, power.max(dim=0).values / total.clamp_min(1e-300),
                       torch.zeros_like(total))


@torch.no_grad()
def basis_separation(model: nn.Module, graph: Graph, W: Tensor) -> dict:
    """Does the hidden layer's basis give the features a polysemantic neuron mixes one each?

    Table ``toy_features``: every basis feature of every rotated node layer with its top input
    feature and purity. Summary: mean purity of the hidden basis features and of the neurons,
    and the share of features sitting on polysemantic neurons that are the top input of a pure
    (>= PURE) hidden basis feature of their own.
    """
    n = W.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    acts = capture(frozen_folded_copy(model, torch.float64), eye, graph.layer_names)
    frames = []
    summary: dict[str, float] = {}
    pure_tops: set[int] = set()
    for layer in graph.layers:
        if not layer.has_constant:
            continue  # the output is not rotated
        features = acts[layer.name].to(torch.float64) @ layer.C
        purity = feature_purity(features)[1:]  # column 0: the constant direction
        top = (features - features.mean(dim=0)).square().argmax(dim=0)[1:]
        frames.append(pd.DataFrame({"layer": layer.name, "feature": np.arange(1, layer.rank),
                                    "top_input": top.numpy(), "purity": purity.numpy()}))
        summary[f"toy/purity_mean/{layer.name}"] = float(purity.mean())
        if layer.name == HIDDEN:
            pure_tops = set(top[purity >= PURE].tolist())
    on = represented(W)
    poly = on.sum(dim=0) > 1
    neuron_purity = feature_purity(W.double())
    used = on.sum(dim=0) > 0
    summary["toy/neuron_purity_mean"] = float(neuron_purity[used].mean()) if used.any() else 0.0
    mixed = on[:, poly].any(dim=1).nonzero().flatten().tolist()  # features on polysemantic ones
    if HIDDEN in graph.layer_names and mixed:
        summary["toy/mixed_features_separated"] = sum(i in pure_tops for i in mixed) / len(mixed)
    return {"toy_features": pd.concat(frames, ignore_index=True), **summary}


def prepare(cfg: RunConfig) -> Prepared:
    """The pipeline's hook: the trained toy as a Sequential, the identity batch for the basis and
    the ablations (score: the argmax of y recovers the feature), and the toy's counts."""
    run = PolyToyRun(n=cfg.model.n, m=cfg.model.m, seed=cfg.seed, steps=cfg.train.steps,
                     lr=cfg.train.lr, l1_lambda=cfg.train.l1_lambda,
                     weight_decay=cfg.train.weight_decay, betas=tuple(cfg.train.betas),
                     log_every=cfg.train.log_every, threads=cfg.threads)
    # committed paper models are read in place; every other model is cached in paths.cache
    cache = model_cache_dir(cfg.paths, FAMILY, run.seed, run.trajectory(), run.steps)
    result = load_or_train(run, cache,
                           log=None if cfg.progress is False else print)
    final = result.history.iloc[-1]
    summary = {**weight_stats(result.W), "train/step": run.steps,
               "train/loss": float(final["loss"]),
               "train/reconstruction": float(final["reconstruction"]),
               "train/steps_per_s": result.steps_per_s,
               "train/steps_trained_now": result.steps_trained,
               "train/checkpoint": result.path.name if result.path else ""}
    eye = torch.eye(run.n)
    return Prepared(model=as_sequential(result.W), basis_inputs=eye,
                    ablation_data=(eye, torch.arange(run.n)), score="accuracy", summary=summary,
                    analyse=lambda model, graph: basis_separation(model, graph, result.W),
                    relu_layers=["output"], history={HISTORY: result.history},
                    build_graph=cfg.model.graph)
