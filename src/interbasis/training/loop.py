"""The one training loop of every trained family, and the cache around it.

A family describes one training run as a :class:`Recipe`: its cache key (``trajectory``), how to
build the model and optimizer, how to train from one point to the next (``advance``, which returns
the step losses without synchronising), how to evaluate, and what its checkpoint adds. Everything
else is here, once: torch threads (and float32 denormal flushing) set for the run and given back,
resuming from a checkpoint, the training curve, the divergence checks, checkpoints and snapshots
saved atomically, and the cache protocol (:func:`load_or_train`: committed models are read in
place, others trained, resumed or loaded in ``paths.cache``).

A point is the recipe's ``unit`` (``"step"``, or ``"epoch"`` for the vision family); the curve
gets a row every ``eval_every`` points and at the end, the checkpoint is written every
``save_every`` points and at the end, a snapshot of the model every ``snapshot_every`` (0: none).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import Tensor, nn

from interbasis.training.cache import model_cache_dir
from interbasis.training.checkpoint import (
    CheckpointError,
    check_config_matches,
    checkpoint_path,
    load_checkpoint,
    load_resume_or_train,
    save_checkpoint,
)
from interbasis.training.progress import time_left

Log = Callable[[str], None]
Model = TypeVar("Model", bound=nn.Module)  # the family's model class (ModAddTransformer, ...)


class TrainingDiverged(RuntimeError):
    """The training loss (or an evaluation loss) became NaN or infinite."""


class Recipe(Protocol[Model]):
    """What a family supplies to train one run of its ``Model`` (a frozen dataclass in the
    family's module).

    The attributes are read only: fields, class attributes or properties (e.g. ``total`` from
    the run config's ``train.steps``).
    """

    @property
    def family(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def unit(self) -> str: ...  # the checkpoint key of progress: "step" or "epoch"
    @property
    def total(self) -> int: ...  # points to train to
    @property
    def eval_every(self) -> int: ...  # points between curve rows
    @property
    def save_every(self) -> int: ...  # points between checkpoint saves
    @property
    def snapshot_every(self) -> int: ...  # points between kept snapshots of the model; 0: none
    @property
    def eval_at_start(self) -> bool: ...  # a curve row before the first update
    @property
    def steps_per_unit(self) -> int: ...  # optimizer steps per point (vision: batches per epoch)
    @property
    def threads(self) -> int | None: ...  # torch threads while training; None: leave them
    @property
    def flush_denormal(self) -> bool: ...  # flush float32 denormals to zero while training

    def trajectory(self) -> dict: ...  # everything that determines the parameters: the cache key
    def check(self) -> None: ...  # ValueError for a run that cannot train
    def build(self) -> tuple[Model, torch.optim.Optimizer]: ...
    def advance(self, model: Model, optimizer: torch.optim.Optimizer, start: int,
                end: int) -> Tensor: ...  # train points start..end; the losses, one per step
    def evaluate(self, model: Model, point: int, losses: Tensor | None
                 ) -> dict[str, float]: ...  # a curve row (losses: the last advance's)
    def line(self, point: int, row: dict[str, float]) -> str: ...  # the log line of a curve row
    def describe(self) -> dict: ...  # what the checkpoint and snapshots add (e.g. model_config)
    def results(self, model: Model, curve: dict[str, list]) -> dict: ...  # final numbers
    def load(self, checkpoint: dict, path: Path | None) -> Model: ...  # model of a checkpoint


@dataclass
class TrainResult(Generic[Model]):
    """A trained model, its checkpoint and how many optimizer steps this call trained (0: a cache
    hit)."""

    model: Model
    checkpoint: dict
    path: Path | None
    steps_trained: int


def train(recipe: Recipe[Model], path: Path | None = None, resume: dict | None = None,
          log: Log | None = print) -> TrainResult[Model]:
    """Train ``recipe`` from scratch or from the checkpoint dict ``resume``, saving to ``path``."""
    recipe.check()
    with _runtime(recipe.threads, recipe.flush_denormal):
        return _train(recipe, path, resume, log or (lambda line: None))


def _train(recipe: Recipe[Model], path: Path | None, resume: dict | None, log: Log
           ) -> TrainResult[Model]:
    model, optimizer = recipe.build()
    curve: dict[str, list] = {}
    done = 0
    if resume is not None:
        check_config_matches(resume["trajectory"], recipe.trajectory(), "training", str(path))
        model.load_state_dict(resume["model_state"])
        optimizer.load_state_dict(resume["optimizer_state"])
        if "rng_state" in resume:  # for stochastic recipes to resume exactly
            torch.set_rng_state(resume["rng_state"])
        curve = {key: list(values) for key, values in resume["curve"].items()}
        done = resume[recipe.unit]
    first = done
    started = time.perf_counter()

    def record(losses: Tensor | None) -> None:
        row = {recipe.unit: done, **recipe.evaluate(model, done, losses)}
        bad = [key for key, value in row.items() if "loss" in key and not _finite(value)]
        if bad:
            raise TrainingDiverged(f"training diverged: non-finite {bad[0]} at {recipe.unit} "
                                   f"{done} ({_who(recipe)})")
        for key, value in row.items():
            curve.setdefault(key, []).append(value)
        rate = (done - first) * recipe.steps_per_unit / max(time.perf_counter() - started, 1e-9)
        log(f"{recipe.line(done, row)}  {rate:.1f} steps/s  "
            f"{time_left(done, recipe.total, first, started)}")

    if recipe.eval_at_start and not curve:
        record(None)
        started = time.perf_counter()  # the rate counts training, not the first evaluation
    if recipe.snapshot_every and done == 0 and path is not None:
        save_snapshot(path, recipe, model, done)
    while done < recipe.total:
        # Train to the next eval, save or snapshot point without a sync: losses go to a buffer.
        end = min(recipe.total, _next(done, recipe.eval_every), _next(done, recipe.save_every),
                  _next(done, recipe.snapshot_every or recipe.total + 1))
        losses = recipe.advance(model, optimizer, done, end)
        finite = torch.isfinite(losses)
        if not finite.all():
            bad = int((~finite).nonzero()[0])
            step = done * recipe.steps_per_unit + bad
            raise TrainingDiverged(f"training diverged: loss {losses[bad].item()} at step "
                                   f"{step} ({_who(recipe)})")
        done = end
        if done % recipe.eval_every == 0 or done == recipe.total:
            record(losses)
        if path is not None and recipe.snapshot_every and done % recipe.snapshot_every == 0:
            save_snapshot(path, recipe, model, done)
        if path is not None and (done % recipe.save_every == 0 or done == recipe.total):
            save_checkpoint(path, _checkpoint(recipe, model, optimizer, done, curve, started))
    model.eval()
    checkpoint = _checkpoint(recipe, model, optimizer, done, curve, started)
    return TrainResult(model, checkpoint, path, (done - first) * recipe.steps_per_unit)


def load_or_train(recipe: Recipe[Model], checkpoint_dir: str | Path, log: Log | None = print
                  ) -> TrainResult[Model]:
    """The model of ``recipe`` at ``recipe.total`` points: from the cache, resumed, or trained.

    A cached run at exactly that point is loaded without training; one at an earlier point is
    resumed; one past it raises :class:`CheckpointError` (the cache keeps only the latest).
    """
    path = checkpoint_path(checkpoint_dir, recipe.family, recipe.seed, recipe.trajectory())
    return load_resume_or_train(
        path, recipe.unit, recipe.total, recipe.trajectory(),
        train=lambda resume: train(recipe, path, resume, log),
        loaded=lambda checkpoint: TrainResult(recipe.load(checkpoint, path), checkpoint, path,
                                              steps_trained=0),
        log=log)


def cached_model(paths: Any, recipe: Recipe[Model], progress: bool | None
                 ) -> TrainResult[Model]:
    """The run's model for the pipeline: a committed paper model read in place when it is at the
    target, every other one trained, resumed or loaded in ``paths.cache``."""
    directory = model_cache_dir(paths, recipe.family, recipe.seed, recipe.trajectory(),
                                recipe.total)
    return load_or_train(recipe, directory, log=None if progress is False else print)


def train_summary(result: TrainResult[Any]) -> dict[str, int | str]:
    """The summary keys every trained family reports."""
    return {"train/steps_trained_now": result.steps_trained,
            "train/checkpoint": result.path.name if result.path else ""}


def snapshot_path(path: Path, step: int) -> Path:
    """Where the model at ``step`` of the run cached at ``path`` is kept."""
    return path.with_suffix(".snapshots") / f"step{step:07d}.pt"


def save_snapshot(path: Path, recipe: Recipe[Any], model: nn.Module, step: int) -> None:
    save_checkpoint(snapshot_path(path, step), {
        "family": recipe.family, "seed": recipe.seed, "step": step,
        "trajectory": recipe.trajectory(), **recipe.describe(), "model_state": _state(model)})


def load_snapshots(path: Path, steps: list[int], load: Callable[[dict, Path], Model]
                   ) -> list[Model]:
    """The snapshot models of the run cached at ``path`` at ``steps``; one error naming the
    missing ones (a run trained without ``snapshot_every`` has none)."""
    missing = [step for step in steps if not snapshot_path(path, step).is_file()]
    if missing:
        raise CheckpointError(
            f"no snapshots of {path.name} at steps {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''} in {path.with_suffix('.snapshots')}; the "
            "cached run was trained without them: "
            "train it again with that snapshot_every into an empty checkpoint dir")
    return [load(load_checkpoint(snapshot_path(path, step)), snapshot_path(path, step))
            for step in steps]


@contextlib.contextmanager
def _runtime(threads: int | None, flush_denormal: bool) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    if flush_denormal:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if flush_denormal:
            torch.set_flush_denormal(False)  # torch's default; there is no getter to restore


def _checkpoint(recipe: Recipe[Model], model: Model, optimizer: torch.optim.Optimizer, done: int,
                curve: dict[str, list], started: float) -> dict:
    return {
        "family": recipe.family, "seed": recipe.seed, recipe.unit: done,
        **({"step": done * recipe.steps_per_unit} if recipe.unit != "step" else {}),
        "trajectory": recipe.trajectory(), **recipe.describe(),
        "model_state": _state(model), "optimizer_state": optimizer.state_dict(),
        "rng_state": torch.get_rng_state(),
        "curve": {key: list(values) for key, values in curve.items()},
        **recipe.results(model, curve),
        "train_seconds": time.perf_counter() - started,
        "torch_version": str(torch.__version__),
    }


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _next(point: int, every: int) -> int:
    return (point // every + 1) * every


def _finite(value: object) -> bool:
    return not isinstance(value, float) or bool(torch.isfinite(torch.tensor(value)))


def _who(recipe: Recipe[Any]) -> str:
    lr = getattr(recipe, "lr", None)
    return f"seed {recipe.seed}" + (f", lr {lr}" if lr is not None else "")
