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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from interbasis.analysis.degeneracy import OVER_TRAINING, measures_over_training
from interbasis.analysis.fourier import modadd_analysis
from interbasis.config import ModelConfig, RunConfig, Strict
from interbasis.data.modadd import ModAddSplit, make_modadd_split
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.models.transformer_lens import find_checkpoint, load_transformer_lens
from interbasis.training import loop
from interbasis.training.checkpoint import CheckpointError, check_config_matches, load_checkpoint
from interbasis.training.family import Family, Prepared, graph_settings
from interbasis.training.loop import TrainingDiverged, TrainResult, snapshot_path

FAMILY = "modadd"
RELU_LAYER = "blocks.0.mlp.hook_post"  # its input: the MLP activations after the ReLU
__all__ = ["FAMILY", "RELU_LAYER", "ModAddDataConfig", "ModAddModelConfig", "ModAddRun",
           "ModAddRunConfig", "ModAddTrainConfig", "TrainResult", "TrainingDiverged",
           "snapshot_path"]


class ModAddModelConfig(ModelConfig):
    family: Literal["modadd"] = Field(description="model family (a module in interbasis.models)")
    d_model: int = Field(128, ge=1, description="residual stream width")
    n_heads: int = Field(4, ge=1, description="attention heads")
    d_head: int = Field(32, ge=1, description="width of each head")
    d_mlp: int = Field(512, ge=1, description="MLP hidden width")
    checkpoint: str | None = Field(None, description="load this TransformerLens HookedTransformer "
                                   "state dict (a .pt file, or a folder searched for the run's "
                                   "seed: see models/transformer_lens.py) instead of training")
    expected_accuracy: float | dict[int, float] | None = Field(
        None, description="test accuracy the loaded checkpoint must reach (per seed: a map); "
        "the run fails if it differs by more than accuracy_tolerance")
    accuracy_tolerance: float = Field(5e-5, ge=0, description="allowed |accuracy - expected| "
                                      "(5e-5: rounding to 5 decimals, under one of 8939 pairs)")

    def blocks(self) -> int:
        return 1


class ModAddDataConfig(Strict):
    name: Literal["modadd"] = Field(description="dataset (a module in interbasis.data)")
    p: int = Field(113, ge=2, description="modulus of the modular-addition task")
    train_fraction: float = Field(0.3, gt=0, lt=1, description="share of pairs used to train")
    data_seed: int = Field(0, ge=0, description="seed of the train/test split (not the model)")

    def split_settings(self) -> dict[str, Any]:
        """``make_modadd_split``'s keywords (also the cache key's and checkpoint's data part)."""
        return self.model_dump(exclude={"name"})


class ModAddTrainConfig(Strict):
    steps: int = Field(60_000, ge=0, description="optimizer steps (full batch)")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(1.0, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW betas")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps")
    eval_every: int = Field(500, ge=1, description="steps between training-curve points")
    save_every: int = Field(1000, ge=1, description="steps between checkpoint saves")
    snapshot_every: int = Field(0, ge=0, description="keep the model every this many steps and "
                                "measure degeneracy and basis ranks at each (0: off)")


class ModAddRunConfig(RunConfig):
    model: ModAddModelConfig
    data: ModAddDataConfig
    train: ModAddTrainConfig


# debug=tiny: a 16-wide transformer on p = 13, 50 steps
TINY = {"model": {"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
        "data": {"p": 13, "train_fraction": 0.5},
        "train": {"steps": 50, "eval_every": 25, "save_every": 50}}
PAPER_DATA = ModAddDataConfig(name="modadd")  # p = 113, the 30% split of data seed 0


@dataclass(frozen=True)
class ModAddRun:
    """One training run: seed, model, data and training settings (the loop's recipe).

    ``train`` is the run config's own section; ``threads`` and ``flush_denormal`` are runtime
    knobs, outside the cache key like the step count and the eval, save and snapshot intervals
    (they change no update, or only its last bits).
    """

    seed: int = 0  # model seed (initialisation); the split has its own data.data_seed
    model: ModAddTransformerConfig = field(default_factory=ModAddTransformerConfig)
    data: ModAddDataConfig = PAPER_DATA
    train: ModAddTrainConfig = field(default_factory=ModAddTrainConfig)
    threads: int | None = None
    flush_denormal: bool = True  # see the module docstring

    family = FAMILY
    unit = "step"
    eval_at_start = True
    steps_per_unit = 1

    def trajectory(self) -> dict:
        """Everything that determines the parameters at every step: the cache key."""
        optim = {name: getattr(self.train, name)
                 for name in ("lr", "weight_decay", "betas", "warmup_steps")}
        return {"family": FAMILY, "seed": self.seed, "model": asdict(self.model),
                "data": self.data.split_settings(),
                "optim": {**optim, "betas": list(self.train.betas)}}

    @property
    def total(self) -> int:
        return self.train.steps

    @property
    def eval_every(self) -> int:
        return self.train.eval_every

    @property
    def save_every(self) -> int:
        return self.train.save_every

    @property
    def snapshot_every(self) -> int:
        return self.train.snapshot_every

    @property
    def lr(self) -> float:
        return self.train.lr

    def check(self) -> None:
        if self.model.d_vocab != self.data.p + 1 or self.model.n_ctx != 3:
            raise ValueError(
                f"model d_vocab={self.model.d_vocab}, n_ctx={self.model.n_ctx} do not fit "
                f"modular addition mod {self.data.p} (need d_vocab={self.data.p + 1}, n_ctx=3)")

    def build(self) -> tuple[ModAddTransformer, torch.optim.Optimizer]:
        model = ModAddTransformer(self.model, seed=self.seed)
        return model, make_optimizer(model, self.train)

    def advance(self, model: ModAddTransformer, optimizer: torch.optim.Optimizer, start: int,
                end: int) -> Tensor:
        split = self._split()
        step = make_train_step(model, optimizer)
        losses = torch.empty(end - start, dtype=torch.float64)
        for i in range(end - start):
            losses[i] = step(split.train_tokens, split.train_labels, lr_at(start + i, self.train))
        return losses

    def evaluate(self, model: ModAddTransformer, point: int, losses: Tensor | None
                 ) -> dict[str, float]:
        split = self._split()
        train_loss, train_acc = evaluate(model, split.train_tokens, split.train_labels)
        test_loss, test_acc = evaluate(model, split.test_tokens, split.test_labels)
        return {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
                "test_acc": test_acc}

    def line(self, point: int, row: dict[str, float]) -> str:
        return (f"step {point:>6}/{self.total}  train_loss {row['train_loss']:.3e}  train_acc "
                f"{row['train_acc']:.4f}  test_loss {row['test_loss']:.3e}  test_acc "
                f"{row['test_acc']:.4f}")

    def describe(self) -> dict:
        return {"model_config": asdict(self.model), "data_config": self.data.split_settings(),
                "train_config": {**self.train.model_dump(), "betas": list(self.train.betas),
                                 "threads": self.threads, "flush_denormal": self.flush_denormal}}

    def results(self, model: ModAddTransformer, curve: dict[str, list]) -> dict:
        return {"train_acc": curve["train_acc"][-1], "test_acc": curve["test_acc"][-1]}

    def load(self, checkpoint: dict, path: Path | None) -> ModAddTransformer:
        return model_from_checkpoint(checkpoint, self.model, path)

    def _split(self) -> ModAddSplit:
        return _split(self.data)


_SPLITS: dict[ModAddDataConfig, ModAddSplit] = {}


def _split(data: ModAddDataConfig) -> ModAddSplit:
    if data not in _SPLITS:  # built once per process: the loop asks at every chunk
        _SPLITS[data] = make_modadd_split(**data.split_settings())
    return _SPLITS[data]


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
          log: Callable[[str], None] | None = print) -> TrainResult[ModAddTransformer]:
    """Train ``run`` from scratch or from the checkpoint dict ``resume``, saving to ``path``."""
    return loop.train(run, path, resume, log)


def load_or_train(run: ModAddRun, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult[ModAddTransformer]:
    """The model of ``run`` after ``run.train.steps`` steps: from the cache, resumed, or trained."""
    return loop.load_or_train(run, checkpoint_dir, log)


def load_snapshots(path: Path, steps: list[int]) -> list[ModAddTransformer]:
    """The snapshot models of the run cached at ``path`` at ``steps``."""
    return loop.load_snapshots(path, steps, lambda checkpoint, _: model_from_checkpoint(checkpoint))


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
    defaults = ModAddTrainConfig()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint-dir", default="results/cache/checkpoints/modadd")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--save-every", type=int, default=defaults.save_every)
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="keep the model every N steps beside the checkpoint (0: never)")
    args = parser.parse_args(argv)
    try:
        train_cfg = ModAddTrainConfig(steps=args.steps, eval_every=args.eval_every,
                                      save_every=args.save_every,
                                      snapshot_every=args.snapshot_every)
        run = ModAddRun(seed=args.seed, train=train_cfg, threads=args.threads)
        result = load_or_train(run, args.checkpoint_dir)
    except (CheckpointError, TrainingDiverged, ValueError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    done = result.checkpoint
    print(f"{result.path}: step {done['step']}, train_acc {done['train_acc']:.4f}, "
          f"test_acc {done['test_acc']:.4f} ({result.steps_trained} steps trained now)")
    return 0


def run_from_config(cfg: ModAddRunConfig) -> ModAddRun:
    """The training run a validated run config asks for (its checkpoint is the cache entry)."""
    return ModAddRun(
        seed=cfg.seed,
        model=ModAddTransformerConfig(d_vocab=cfg.data.p + 1, d_model=cfg.model.d_model,
                                      n_heads=cfg.model.n_heads, d_head=cfg.model.d_head,
                                      d_mlp=cfg.model.d_mlp),
        data=cfg.data, train=cfg.train, threads=cfg.threads)


def prepare(cfg: ModAddRunConfig) -> Prepared:
    """The cached (or trained) model, train pairs for the basis, test pairs for the ablations,
    and the training record for the run summary."""
    run = run_from_config(cfg)
    split = _split(run.data)
    path = None
    summary: dict[str, float | int | str]
    if cfg.model.checkpoint is not None:  # someone else's trained model (e.g. the LIB authors')
        model, summary = load_external(cfg, cfg.model.checkpoint, run, split)
    else:
        result = loop.cached_model(cfg.paths, run, cfg.progress)
        model, checkpoint, path = result.model, result.checkpoint, result.path
        summary = {"train/step": int(checkpoint["step"]),
                   "train/train_acc": checkpoint["train_acc"],
                   "train/test_acc": checkpoint["test_acc"], **loop.train_summary(result)}
    return Prepared(model=model, basis_inputs=split.split(cfg.method.basis_split)[0],
                    ablation_data=split.split(cfg.ablation.split), score="accuracy",
                    summary=summary, analyse=partial(modadd_analysis, p=cfg.data.p),
                    checkpoint=path)


def over_training(cfg: ModAddRunConfig, prepared: Prepared) -> dict[str, pd.DataFrame]:
    """Degeneracy and basis ranks (cfg.method's basis) at every kept snapshot of the run."""
    if not cfg.train.snapshot_every or prepared.checkpoint is None:
        return {}
    split = _split(run_from_config(cfg).data)
    steps = list(range(0, cfg.train.steps + 1, cfg.train.snapshot_every))  # where they were kept

    def scores(model: nn.Module) -> dict[str, float]:
        assert isinstance(model, ModAddTransformer)  # the snapshots are
        _, train_acc = evaluate(model, split.train_tokens, split.train_labels)
        _, test_acc = evaluate(model, split.test_tokens, split.test_labels)
        return {"train_acc": train_acc, "test_acc": test_acc}

    snapshots: list[tuple[int, nn.Module]] = list(
        zip(steps, load_snapshots(prepared.checkpoint, steps), strict=True))
    # M' for every method here: rank/jacobian is tracked over training
    settings = {**graph_settings(cfg), "jacobian_gram": True}
    return {OVER_TRAINING: measures_over_training(
        snapshots, prepared.basis_inputs, list(cfg.model.node_layers), [RELU_LAYER],
        scores=scores, **settings)}


class AccuracyMismatch(RuntimeError):
    """A loaded checkpoint whose test accuracy is not the one the config expects."""


def load_external(cfg: ModAddRunConfig, checkpoint: str, run: ModAddRun, split: ModAddSplit
                  ) -> tuple[ModAddTransformer, dict[str, float | int | str]]:
    """The TransformerLens checkpoint ``checkpoint`` (``cfg.model.checkpoint``, for
    ``cfg.seed``), its accuracy checked against ``cfg.model.expected_accuracy``, and its summary
    entries."""
    path = find_checkpoint(checkpoint, cfg.seed)
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
    summary: dict[str, float | int | str] = {
        "train/train_acc": train_acc, "train/test_acc": test_acc, "train/steps_trained_now": 0,
        "train/checkpoint": str(path.name), "train/checkpoint_run": path.parent.name}
    if expected is not None:
        summary["train/expected_test_acc"] = expected
    return model, summary


FAMILY_SPEC = Family(FAMILY, prepare, schema=ModAddRunConfig, tiny=TINY,
                     relu_layers=lambda model: [RELU_LAYER], over_training=over_training)


if __name__ == "__main__":
    sys.exit(main())
