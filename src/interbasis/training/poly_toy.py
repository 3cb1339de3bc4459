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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import Tensor, nn

from interbasis.basis import features_by_layer
from interbasis.basis.types import Graph
from interbasis.config import ModelConfig, RunConfig, Strict
from interbasis.models.poly_toy import (
    as_sequential,
    init_weights,
    polysemantic_neurons,
    represented,
    toy_gradient,
    toy_loss,
    weight_stats,
)
from interbasis.training import loop
from interbasis.training.family import Family, Prepared

FAMILY = "poly_toy"
HISTORY = "toy_training"  # the training-curve table: <run>/toy_training.csv, W&B toy_training/*
HIDDEN = "1"  # node layer of the hidden activations x W in as_sequential's names
PURE = 0.9  # a basis feature with this share of its power on one input "is" that input feature


class PolyToyModelConfig(ModelConfig):
    family: Literal["poly_toy"] = Field(description="incidental-polysemanticity toy "
                                        "ReLU(x W W^T) (docs/experiments.md E5)")
    n: int = Field(256, ge=1, description="one-hot input features")
    m: int = Field(256, ge=1, description="hidden neurons (the paper sweeps m >= n)")
    graph: bool = Field(True, description="build the basis graph and its ablations; off in the "
                        "paper sweep, where the toy's own counts are the result")

    def layer_names(self) -> set[str]:
        return {"0", HIDDEN}


class PolyToyDataConfig(Strict):
    name: Literal["identity"] = Field(description="every one-hot feature once (the identity "
                                      "batch), for training, the basis and the ablations")


class PolyToyTrainConfig(Strict):
    steps: int = Field(7500, ge=0, description="full-batch AdamW steps")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    l1_lambda: float = Field(1e-3, ge=0, description="lambda: weight of ||W||_1 in the loss")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (torch's "
                                "default; E5 names no value)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    log_every: int = Field(250, ge=1, description="steps between training-curve points")


class PolyToyRunConfig(RunConfig):
    model: PolyToyModelConfig
    data: PolyToyDataConfig
    train: PolyToyTrainConfig


# debug=tiny: n = 12 features, m = 24 neurons, 400 steps, with its graph
TINY = {"model": {"n": 12, "m": 24}, "train": {"steps": 400, "log_every": 100}}


class ToyWeights(nn.Module):
    """The trained object: W (n, m); the model the basis sees is ``as_sequential(W)``."""

    def __init__(self, W: Tensor) -> None:
        super().__init__()
        self.W = nn.Parameter(W)


@dataclass(frozen=True)
class PolyToyRun:
    """One toy (the loop's recipe): sizes, seed and the run config's train section; all of it
    but ``train.log_every`` and ``threads`` is the cache key (steps included: a toy trains in
    minutes, so a longer run is trained anew, not resumed)."""

    n: int = 256
    m: int = 256
    seed: int = 0
    train: PolyToyTrainConfig = field(default_factory=PolyToyTrainConfig)
    threads: int | None = field(default=None, compare=False)

    family = FAMILY
    unit = "step"
    flush_denormal = False
    eval_at_start = True
    snapshot_every = 0
    steps_per_unit = 1

    def trajectory(self) -> dict:
        optim = self.train.model_dump(exclude={"log_every"})
        return {"family": FAMILY, "n": self.n, "m": self.m, "seed": self.seed, **optim,
                "betas": list(self.train.betas)}

    @property
    def lr(self) -> float:
        return self.train.lr

    @property
    def total(self) -> int:
        return self.train.steps

    @property
    def eval_every(self) -> int:
        return self.train.log_every

    @property
    def save_every(self) -> int:
        return max(self.train.steps, 1)  # once, at the end

    def check(self) -> None:
        pass  # the schema bounds steps and log_every

    def build(self) -> tuple[ToyWeights, torch.optim.Optimizer]:
        model = ToyWeights(init_weights(self.n, self.m, self.seed))
        # fused: one kernel for the whole update (as the modadd loop); the gradient is analytic
        return model, torch.optim.AdamW(model.parameters(), lr=self.train.lr,
                                        betas=self.train.betas,
                                        weight_decay=self.train.weight_decay, fused=True)

    def advance(self, model: ToyWeights, optimizer: torch.optim.Optimizer, start: int,
                end: int) -> Tensor:
        for _ in range(start, end):
            model.W.grad = toy_gradient(model.W.detach(), self.train.l1_lambda)
            optimizer.step()
        return torch.empty(0)  # the loss is only computed at curve rows (it costs a matmul)

    @torch.no_grad()
    def evaluate(self, model: ToyWeights, point: int, losses: Tensor | None
                 ) -> dict[str, float]:
        W = model.W.detach()
        error, l1 = toy_loss(W, self.train.l1_lambda)
        on = represented(W)
        return {"loss": float(error + l1), "reconstruction": float(error), "l1": float(l1),
                "polysemantic_neurons": polysemantic_neurons(W),
                "features_represented": int((on.sum(dim=1) > 0).sum())}

    def line(self, point: int, row: dict[str, float]) -> str:
        return (f"step {point:>5}/{self.total}  loss {row['loss']:.4f}  polysemantic "
                f"{row['polysemantic_neurons']}")

    def describe(self) -> dict:
        return {}

    def results(self, model: ToyWeights, curve: dict[str, list]) -> dict:
        return {}

    def load(self, checkpoint: dict, path: Path | None) -> ToyWeights:
        # a toy cached before the shared loop kept W and its curve ("history") at the top
        return ToyWeights(checkpoint["model_state"]["W"] if "model_state" in checkpoint
                          else checkpoint["W"])


@dataclass
class ToyResult:
    W: Tensor  # (n, m) float32
    history: pd.DataFrame  # step, loss terms and counts every log_every steps
    steps_per_s: float  # nan for a cache hit
    path: Path | None
    steps_trained: int


def _toy_result(result: loop.TrainResult[ToyWeights]) -> ToyResult:
    checkpoint = result.checkpoint
    seconds = checkpoint.get("train_seconds", 0.0)
    rate = (result.steps_trained / seconds if result.steps_trained and seconds > 0
            else float("nan"))
    curve = checkpoint["curve"] if "curve" in checkpoint else checkpoint["history"]
    return ToyResult(result.model.W.detach().clone(), pd.DataFrame(curve), rate, result.path,
                     result.steps_trained)


def train(run: PolyToyRun, log: Callable[[str], None] | None = None) -> ToyResult:
    """Train from the N(0, 1/m) init; returns the final W and the training curve."""
    return _toy_result(loop.train(run, log=log))


def load_or_train(run: PolyToyRun, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = None) -> ToyResult:
    """The trained toy from the cache, or trained now and saved there."""
    return _toy_result(loop.load_or_train(run, checkpoint_dir, log))


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
    eye = torch.eye(W.shape[0], dtype=torch.float64)
    rotated = [layer for layer in graph.layers if layer.has_constant]  # the output is not rotated
    found = features_by_layer(model, graph, [layer.name for layer in rotated], eye)
    frames = []
    summary: dict[str, float] = {}
    pure_tops: set[int] = set()
    for layer in rotated:
        features = found[layer.name]
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


def prepare(cfg: PolyToyRunConfig) -> Prepared:
    """The trained toy as a Sequential, the identity batch for the basis and the ablations
    (score: the argmax of y recovers the feature), and the toy's counts."""
    run = PolyToyRun(n=cfg.model.n, m=cfg.model.m, seed=cfg.seed, train=cfg.train,
                     threads=cfg.threads)
    result = _toy_result(loop.cached_model(cfg.paths, run, cfg.progress))
    final = result.history.iloc[-1]
    summary = {**weight_stats(result.W), "train/step": run.total,
               "train/loss": float(final["loss"]),
               "train/reconstruction": float(final["reconstruction"]),
               "train/steps_per_s": result.steps_per_s,
               "train/steps_trained_now": result.steps_trained,
               "train/checkpoint": result.path.name if result.path else ""}
    eye = torch.eye(run.n)
    return Prepared(model=as_sequential(result.W), basis_inputs=eye,
                    ablation_data=(eye, torch.arange(run.n)), score="accuracy", summary=summary,
                    analyse=lambda model, graph: basis_separation(model, graph, result.W),
                    checkpoint=result.path, curve=result.history.to_dict(orient="list"))


def over_training(cfg: PolyToyRunConfig, prepared: Prepared) -> dict[str, pd.DataFrame]:
    """The training curve (loss terms and polysemantic counts by step) as a table."""
    return {HISTORY: pd.DataFrame(prepared.curve)}


FAMILY_SPEC = Family(FAMILY, prepare, schema=PolyToyRunConfig, tiny=TINY,
                     relu_layers=lambda model: ["output"], over_training=over_training)
