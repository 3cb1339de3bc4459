"""Fast full-batch CPU training of the modular-addition transformer, with a checkpoint cache.

The paper recipe (docs/experiments.md E1): AdamW lr 1e-3, weight decay 1.0, betas (0.9, 0.98),
linear
warm-up over 10 steps then constant, full batch (3830 pairs), 60,000 steps, cross-entropy on the
last position in float64. Where the speed comes from (benchmarks/bench_modadd_training.py):
attention queries, MLP and unembedding at the last position only (on one thread
``ModAddTransformer.forward_fast``, which also projects keys, values and queries once per
vocabulary entry; see ``training_forward``), fused AdamW, no per-step
synchronisation (losses go into a buffer checked for NaN/inf at every eval or save).
``torch.compile`` was measured no faster than this on 2 CPU cores (torch 2.13) and is not used.
Once the model has memorised, weight decay drives activations and gradients into float32 denormals,
which x86 CPUs handle in microcode: training slowed from ~17 to ~7 steps/s per core past a few
thousand steps. ``flush_denormal`` (on by default) flushes them to zero, measured 17.1 vs 7.4
steps/s from a 16,000-step checkpoint; it changes the last bits of the updates, like the thread
count, so it is a runtime knob outside the cache hash.

    python -m interbasis.training.modadd --seed 0 --steps 60000 --threads 1 \\
        --checkpoint-dir results/checkpoints/modadd

resumes from the cache if the run exists, saves atomically every ``save_every`` steps and prints one
line per eval. From Python: ``load_or_train(ModAddRun(seed=0), "results/checkpoints/modadd")``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from interbasis.analysis.degeneracy import OVER_TRAINING, measures_over_training
from interbasis.analysis.fourier import modadd_analysis
from interbasis.config import RunConfig
from interbasis.data.modadd import ModAddDataConfig, make_modadd_split
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.models.transformer_lens import find_checkpoint, load_transformer_lens
from interbasis.pipeline import Prepared
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

FAMILY = "modadd"
RELU_LAYER = "blocks.0.mlp.hook_post"  # its input: the MLP activations after the ReLU
CURVE_KEYS = ("step", "train_loss", "train_acc", "test_loss", "test_acc")


@dataclass(frozen=True)
class ModAddTrainConfig:
    """Optimisation settings (in the cache hash) and runtime knobs (not in it).

    See :meth:`ModAddRun.trajectory` for what the hash covers.
    """

    steps: int = 60_000  # total optimizer steps; not in the hash (shorter runs are prefixes)
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 10  # lr ramps up linearly (lr / warmup_steps at the first), then constant
    eval_every: int = 500  # record the curve and print a line every this many steps
    save_every: int = 1000  # write the checkpoint every this many steps (and at the end)
    threads: int | None = None  # torch threads while training; None leaves the current setting
    flush_denormal: bool = True  # flush float32 denormals to zero while training (see above)
    # keep the model every this many steps (and at 0) beside the checkpoint, for measures over
    # training (interbasis.analysis.degeneracy); 0: none. Not in the hash: it changes no update.
    snapshot_every: int = 0


@dataclass(frozen=True)
class ModAddRun:
    """One training run: seed, model, data and training settings."""

    seed: int = 0  # model seed (initialisation); the split has its own data.data_seed
    model: ModAddTransformerConfig = field(default_factory=ModAddTransformerConfig)
    data: ModAddDataConfig = field(default_factory=ModAddDataConfig)
    train: ModAddTrainConfig = field(default_factory=ModAddTrainConfig)

    def trajectory(self) -> dict:
        """Everything that determines the parameters at every step: the cache key."""
        optim = {name: getattr(self.train, name)
                 for name in ("lr", "weight_decay", "betas", "warmup_steps")}
        return {"family": FAMILY, "seed": self.seed, "model": asdict(self.model),
                "data": asdict(self.data), "optim": {**optim, "betas": list(self.train.betas)}}


@dataclass
class TrainResult:
    """A trained model, its checkpoint and how many steps this call trained (0: cache hit)."""

    model: ModAddTransformer
    checkpoint: dict
    path: Path | None
    steps_trained: int


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def lr_at(step: int, cfg: ModAddTrainConfig) -> float:
    """Learning rate of the update that takes the model from ``step`` to ``step + 1``."""
    return cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def make_optimizer(model: ModAddTransformer, cfg: ModAddTrainConfig) -> torch.optim.AdamW:
    # fused: one kernel for all parameters, measured faster than foreach and the for-loop on CPU
    return torch.optim.AdamW(model.parameters(), lr=lr_at(0, cfg), betas=cfg.betas,
                             weight_decay=cfg.weight_decay, fused=True)


def make_train_step(model: ModAddTransformer,
                    optimizer: torch.optim.Optimizer) -> Callable[[Tensor, Tensor, float], Tensor]:
    """``step(tokens, labels, lr)``: one update; returns the loss before it, without a sync.

    The loss is the float64 cross-entropy of :func:`training_forward` (the forward itself stays
    in the parameters' dtype).
    """

    forward = training_forward(model)

    def step(tokens: Tensor, labels: Tensor, lr: float) -> Tensor:
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(forward(tokens).double(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def training_forward(model: ModAddTransformer) -> Callable[[Tensor], Tensor]:
    """The faster last-position forward for the current torch thread count.

    ``forward_fast`` (per-vocabulary key/value/query tables) wins on one thread, the plain
    last-position ``forward`` on more: 18.3 vs 12.7 steps/s at 1 thread, 14.8 vs 19.6 at 2
    (benchmarks/bench_modadd_training.py, 2-core CPU). Both compute the same logits; like the
    thread count itself, the choice changes only the last bits of a run.
    """
    return model.forward_fast if torch.get_num_threads() == 1 else model


@torch.no_grad()
def evaluate(model: ModAddTransformer, tokens: Tensor, labels: Tensor) -> tuple[float, float]:
    """(float64 cross-entropy, accuracy) of the last-position logits on one split."""
    logits = model.forward_fast(tokens).double()
    accuracy = (logits.argmax(dim=-1) == labels).double().mean()
    return F.cross_entropy(logits, labels).item(), accuracy.item()


def train(run: ModAddRun, path: Path | None = None, resume: dict | None = None,
          log: Callable[[str], None] | None = print) -> TrainResult:
    """Train ``run`` from scratch or from the checkpoint dict ``resume``, saving to ``path``."""
    _check_run(run)
    previous_threads = torch.get_num_threads()
    if run.train.threads is not None:
        torch.set_num_threads(run.train.threads)
    torch.set_flush_denormal(run.train.flush_denormal)
    try:
        return _train(run, path, resume, log or (lambda line: None))
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_flush_denormal(False)  # torch's default; there is no getter to restore from


def _train(run: ModAddRun, path: Path | None, resume: dict | None,
           log: Callable[[str], None]) -> TrainResult:
    cfg = run.train
    data = make_modadd_split(run.data)
    model = ModAddTransformer(run.model, seed=run.seed)
    optimizer = make_optimizer(model, cfg)
    curve: dict[str, list] = {key: [] for key in CURVE_KEYS}
    step = 0
    if resume is not None:
        check_config_matches(resume["trajectory"], run.trajectory(), "training", path)
        model.load_state_dict(resume["model_state"])
        optimizer.load_state_dict(resume["optimizer_state"])
        # Full-batch training draws no random numbers; restored so stochastic variants resume
        # exactly.
        torch.set_rng_state(resume["rng_state"])
        curve = {key: list(values) for key, values in resume["curve"].items()}
        step = resume["step"]
    start_step = step

    train_step = make_train_step(model, optimizer)
    tokens, labels = data.train_tokens, data.train_labels

    def record() -> None:
        train_loss, train_acc = evaluate(model, tokens, labels)
        test_loss, test_acc = evaluate(model, data.test_tokens, data.test_labels)
        if not (torch.isfinite(torch.tensor([train_loss, test_loss])).all()):
            raise TrainingDiverged(f"training diverged: non-finite eval loss at step {step} "
                                   f"(seed {run.seed}, lr {cfg.lr})")
        for key, value in zip(CURVE_KEYS, (step, train_loss, train_acc, test_loss, test_acc)):
            curve[key].append(value)
        rate = (step - start_step) / max(time.perf_counter() - started, 1e-9)
        log(f"step {step:>6}/{cfg.steps}  train_loss {train_loss:.3e}  train_acc {train_acc:.4f}  "
            f"test_loss {test_loss:.3e}  test_acc {test_acc:.4f}  {rate:.1f} steps/s  "
            f"{time_left(step, cfg.steps, start_step, started)}")

    started = time.perf_counter()
    if not curve["step"]:
        record()
        started = time.perf_counter()  # the rate counts training steps, not the first evaluation
    if cfg.snapshot_every and step == 0 and path is not None:
        save_snapshot(path, run, model, step)
    while step < cfg.steps:
        # Train up to the next eval, save or snapshot point without synchronising: losses go to a
        # buffer.
        chunk_end = min(cfg.steps, _next_multiple(step, cfg.eval_every),
                        _next_multiple(step, cfg.save_every),
                        _next_multiple(step, cfg.snapshot_every or cfg.steps + 1))
        losses = torch.empty(chunk_end - step, dtype=torch.float64)
        for i in range(chunk_end - step):
            losses[i] = train_step(tokens, labels, lr_at(step + i, cfg))
        finite = torch.isfinite(losses)
        if not finite.all():
            first = int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"training diverged: loss {losses[first].item()} at step {step + first} "
                f"(seed {run.seed}, lr {cfg.lr})"
            )
        step = chunk_end
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record()
        if path is not None and cfg.snapshot_every and step % cfg.snapshot_every == 0:
            save_snapshot(path, run, model, step)
        if path is not None and (step % cfg.save_every == 0 or step == cfg.steps):
            save_checkpoint(path, _checkpoint(run, model, optimizer, step, curve))
    checkpoint = _checkpoint(run, model, optimizer, step, curve)
    return TrainResult(model, checkpoint, path, step - start_step)


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def snapshot_path(path: Path, step: int) -> Path:
    """Where the model at ``step`` of the run cached at ``path`` is kept."""
    return path.with_suffix(".snapshots") / f"step{step:07d}.pt"


def save_snapshot(path: Path, run: ModAddRun, model: ModAddTransformer, step: int) -> None:
    save_checkpoint(snapshot_path(path, step), {
        "family": FAMILY, "seed": run.seed, "step": step, "trajectory": run.trajectory(),
        "model_config": asdict(run.model),
        "model_state": {name: value.detach().clone() for name, value in model.state_dict().items()},
    })


def load_snapshots(path: Path, steps: list[int]) -> list[ModAddTransformer]:
    """The snapshot models of the run cached at ``path`` at ``steps``; one error naming the
    missing ones (a run trained without ``snapshot_every`` has none)."""
    missing = [step for step in steps if not snapshot_path(path, step).is_file()]
    if missing:
        raise CheckpointError(
            f"no snapshots of {path.name} at steps {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''} in {path.with_suffix('.snapshots')}; the "
            "cached run was trained without them: "
            "train it again with that snapshot_every into an empty checkpoint dir")
    return [model_from_checkpoint(snapshot_path(path, step)) for step in steps]


def _check_run(run: ModAddRun) -> None:
    if run.model.d_vocab != run.data.p + 1 or run.model.n_ctx != 3:
        raise ValueError(
            f"model d_vocab={run.model.d_vocab}, n_ctx={run.model.n_ctx} do not fit modular "
            f"addition mod {run.data.p} (need d_vocab={run.data.p + 1}, n_ctx=3)"
        )
    if min(run.train.eval_every, run.train.save_every) < 1 or run.train.steps < 0:
        raise ValueError("steps must be >= 0 and eval_every, save_every >= 1")
    if run.train.snapshot_every < 0:
        raise ValueError("snapshot_every must be >= 0 (0: no snapshots)")


def _checkpoint(run: ModAddRun, model: ModAddTransformer, optimizer: torch.optim.Optimizer,
                step: int, curve: dict[str, list]) -> dict:
    return {
        "family": FAMILY,
        "seed": run.seed,
        "step": step,
        "trajectory": run.trajectory(),
        "model_config": asdict(run.model),
        "data_config": asdict(run.data),
        "train_config": {**asdict(run.train), "betas": list(run.train.betas)},
        "model_state": {name: value.detach().clone() for name, value in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "rng_state": torch.get_rng_state(),
        "curve": {key: list(values) for key, values in curve.items()},
        "train_acc": curve["train_acc"][-1],
        "test_acc": curve["test_acc"][-1],
        "torch_version": str(torch.__version__),
    }


def load_or_train(run: ModAddRun, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult:
    """The model of ``run`` after ``run.train.steps`` steps: from the cache, resumed, or trained.

    A cached run at exactly that step is loaded without training; one at an earlier step is resumed;
    one past it raises :class:`CheckpointError` (the cache keeps only the latest step).
    """
    path = checkpoint_path(checkpoint_dir, FAMILY, run.seed, run.trajectory())
    return load_resume_or_train(
        path, "step", run.train.steps, run.trajectory(),
        train=lambda resume: train(run, path, resume, log),
        loaded=lambda checkpoint: TrainResult(model_from_checkpoint(checkpoint, run.model, path),
                                              checkpoint, path, steps_trained=0),
        log=log)


def model_from_checkpoint(checkpoint: dict | str | Path,
                          cfg: ModAddTransformerConfig | None = None,
                          path: str | Path | None = None) -> ModAddTransformer:
    """The trained model in ``checkpoint`` (a dict or a file), refusing a different ``cfg``."""
    if not isinstance(checkpoint, dict):
        path = checkpoint
        checkpoint = load_checkpoint(checkpoint)
    if cfg is not None:
        check_config_matches(checkpoint["model_config"], asdict(cfg), "model", path or "<dict>")
    model = ModAddTransformer(ModAddTransformerConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model_state"])
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=ModAddTrainConfig.steps)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint-dir", default="results/cache/checkpoints/modadd")
    parser.add_argument("--eval-every", type=int, default=ModAddTrainConfig.eval_every)
    parser.add_argument("--save-every", type=int, default=ModAddTrainConfig.save_every)
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="keep the model every N steps beside the checkpoint (0: never)")
    args = parser.parse_args(argv)
    train_cfg = ModAddTrainConfig(steps=args.steps, threads=args.threads,
                                  eval_every=args.eval_every, save_every=args.save_every,
                                  snapshot_every=args.snapshot_every)
    try:
        result = load_or_train(ModAddRun(seed=args.seed, train=train_cfg), args.checkpoint_dir)
    except (CheckpointError, TrainingDiverged, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    done = result.checkpoint
    print(f"{result.path}: step {done['step']}, train_acc {done['train_acc']:.4f}, "
          f"test_acc {done['test_acc']:.4f} ({result.steps_trained} steps trained now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run_from_config(cfg: RunConfig) -> ModAddRun:
    """The training run a validated run config asks for (its checkpoint is the cache entry)."""
    return ModAddRun(
        seed=cfg.seed,
        model=ModAddTransformerConfig(d_vocab=cfg.data.p + 1, d_model=cfg.model.d_model,
                                      n_heads=cfg.model.n_heads, d_head=cfg.model.d_head,
                                      d_mlp=cfg.model.d_mlp),
        data=ModAddDataConfig(p=cfg.data.p, train_fraction=cfg.data.train_fraction,
                              data_seed=cfg.data.data_seed),
        train=ModAddTrainConfig(steps=cfg.train.steps, lr=cfg.train.lr,
                                weight_decay=cfg.train.weight_decay, betas=tuple(cfg.train.betas),
                                warmup_steps=cfg.train.warmup_steps,
                                eval_every=cfg.train.eval_every, save_every=cfg.train.save_every,
                                snapshot_every=cfg.train.snapshot_every, threads=cfg.threads))


def prepare(cfg: RunConfig) -> Prepared:
    """The pipeline's hook: the cached (or trained) model, train pairs for the basis, test pairs
    for the ablations, and the training record for the run summary."""
    run = run_from_config(cfg)
    split = make_modadd_split(run.data)
    history = {}
    basis_inputs = split.split(cfg.method.basis_split)[0]
    if cfg.model.checkpoint is not None:  # someone else's trained model (e.g. the LIB authors')
        model, summary = load_external(cfg, run, split)
    else:
        # committed paper models are read in place; every other model is cached in paths.cache
        cache = model_cache_dir(cfg.paths, FAMILY, run.seed, run.trajectory(), run.train.steps)
        result = load_or_train(run, cache, log=None if cfg.progress is False else print)
        model, checkpoint = result.model, result.checkpoint
        summary = {"train/step": int(checkpoint["step"]),
                   "train/train_acc": checkpoint["train_acc"],
                   "train/test_acc": checkpoint["test_acc"],
                   "train/steps_trained_now": result.steps_trained,
                   "train/checkpoint": result.path.name if result.path else ""}
        if run.train.snapshot_every and result.path is not None:
            history[OVER_TRAINING] = snapshot_measures(cfg, run, result.path, split,
                                                       basis_inputs)
    return Prepared(model=model, basis_inputs=basis_inputs,
                    ablation_data=split.split(cfg.ablation.split), score="accuracy",
                    summary=summary, analyse=partial(modadd_analysis, p=cfg.data.p),
                    relu_layers=[RELU_LAYER], history=history)


def snapshot_measures(cfg: RunConfig, run: ModAddRun, path: Path, split,
                      basis_inputs: Tensor) -> pd.DataFrame:
    """Degeneracy and basis ranks (cfg.method's basis) at every snapshot of the run."""
    steps = list(range(0, run.train.steps + 1, run.train.snapshot_every))  # where they were kept
    method = cfg.method

    def scores(model: ModAddTransformer) -> dict[str, float]:
        _, train_acc = evaluate(model, split.train_tokens, split.train_labels)
        _, test_acc = evaluate(model, split.test_tokens, split.test_labels)
        return {"train_acc": train_acc, "test_acc": test_acc}

    snapshots = list(zip(steps, load_snapshots(path, list(steps)), strict=True))
    return measures_over_training(
        snapshots, basis_inputs, list(cfg.model.node_layers), [RELU_LAYER], scores=scores,
        method=method.name, center=method.center,
        truncation_threshold=method.truncation_threshold, integration=method.integration,
        n_intervals=method.n_intervals, n_sources=method.n_sources, seed=cfg.seed,
        batch_size=method.batch_size)


class AccuracyMismatch(RuntimeError):
    """A loaded checkpoint whose test accuracy is not the one the config expects."""


def load_external(cfg: RunConfig, run: ModAddRun,
                  split) -> tuple[ModAddTransformer, dict[str, float | int | str]]:
    """The TransformerLens checkpoint ``cfg.model.checkpoint`` (for ``cfg.seed``), its accuracy
    checked against ``cfg.model.expected_accuracy``, and its summary entries."""
    path = find_checkpoint(cfg.model.checkpoint, cfg.seed)
    model = load_transformer_lens(path, run.model)
    _, train_acc = evaluate(model, split.train_tokens, split.train_labels)
    _, test_acc = evaluate(model, split.test_tokens, split.test_labels)
    expected = cfg.model.expected_accuracy
    if isinstance(expected, dict):
        if cfg.seed not in expected:
            raise AccuracyMismatch(f"model.expected_accuracy has no entry for seed {cfg.seed} "
                                   f"(it has seeds {sorted(expected)})")
        expected = expected[cfg.seed]
    if expected is not None and abs(test_acc - expected) > cfg.model.accuracy_tolerance:
        raise AccuracyMismatch(
            f"checkpoint {path}: test accuracy {test_acc:.5f} on the data_seed "
            f"{cfg.data.data_seed} split, expected {expected:.5f} (tolerance "
            f"{cfg.model.accuracy_tolerance:g}): a different model or a different split")
    summary = {"train/train_acc": train_acc, "train/test_acc": test_acc,
               "train/steps_trained_now": 0, "train/checkpoint": str(path.name),
               "train/checkpoint_run": path.parent.name}
    if expected is not None:
        summary["train/expected_test_acc"] = expected
    return model, summary
