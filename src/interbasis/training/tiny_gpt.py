"""Training the tiny GPT on a character corpus (docs/experiments.md E3), with the checkpoint cache.

AdamW on random windows of the train split, linear warm-up then a constant learning rate: the
windows of step s are drawn from a generator seeded by (seed, s), so a run to 1,000 steps is a
prefix of a run to 2,000 and the cache key (:meth:`TinyGPTRun.trajectory`) leaves the step count
out; a shorter cached run is resumed. The key includes the corpus fingerprint.

The pipeline calls :func:`prepare` (``python -m interbasis.run experiment=tiny_gpt``): the basis is
built on ``data.basis_samples`` train windows, the ablations are scored (mean next-character
cross-entropy) on ``data.ablation_samples`` held-out windows, both of ``data.context`` characters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from interbasis.config import RunConfig
from interbasis.data.text import TextCorpus, load_corpus
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig
from interbasis.training import loop
from interbasis.training.checkpoint import load_checkpoint
from interbasis.training.family import Family, Prepared
from interbasis.training.loop import TrainResult

FAMILY = "tiny_gpt"
EVAL_WINDOWS = 64  # held-out windows for the training curve (a fixed set)
__all__ = ["EVAL_WINDOWS", "FAMILY", "TinyGPTRun", "TrainResult"]


@dataclass(frozen=True)
class TinyGPTRun:
    """One training run (the loop's recipe). Everything but ``steps``, ``eval_every`` and
    ``threads`` is in the key."""

    model: TinyGPTConfig
    fingerprint: str  # of the corpus file
    held_out_fraction: float = 0.1
    seed: int = 0
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    eval_every: int = field(default=250, compare=False)
    threads: int | None = field(default=None, compare=False)
    corpus: TextCorpus | None = field(default=None, compare=False, repr=False)

    family = FAMILY
    unit = "step"
    flush_denormal = False
    eval_at_start = False
    snapshot_every = 0
    steps_per_unit = 1

    def trajectory(self) -> dict:
        return {"family": FAMILY, "seed": self.seed, "fingerprint": self.fingerprint,
                "held_out_fraction": self.held_out_fraction, "model": asdict(self.model),
                "optim": {"batch_size": self.batch_size, "lr": self.lr,
                          "weight_decay": self.weight_decay, "warmup_steps": self.warmup_steps}}

    @property
    def total(self) -> int:
        return self.steps

    @property
    def save_every(self) -> int:
        return max(self.steps, 1)  # once, at the end

    def check(self) -> None:
        if self.corpus is None or self.corpus.fingerprint != self.fingerprint:
            found = self.corpus.fingerprint if self.corpus is not None else None
            raise ValueError(f"run is for corpus {self.fingerprint}, got {found}")

    def build(self) -> tuple[TinyGPT, torch.optim.Optimizer]:
        model = TinyGPT(self.model, seed=self.seed)
        return model, torch.optim.AdamW(model.parameters(), lr=self.lr, betas=(0.9, 0.99),
                                        weight_decay=self.weight_decay)

    def advance(self, model: TinyGPT, optimizer: torch.optim.Optimizer, start: int,
                end: int) -> Tensor:
        text = self.corpus.split("train")
        offsets = torch.arange(self.model.n_ctx + 1)
        losses = torch.empty(end - start, dtype=torch.float64)
        for step in range(start, end):
            # the windows of step s depend on (seed, s) only: a shorter run is a prefix
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            starts = torch.randint(0, len(text) - self.model.n_ctx - 1, (self.batch_size,),
                                   generator=generator)
            rows = text[starts[:, None] + offsets]
            for group in optimizer.param_groups:
                group["lr"] = self.lr * min(1.0, (step + 1) / max(1, self.warmup_steps))
            model.train()
            loss = F.cross_entropy(model(rows[:, :-1]).flatten(0, 1), rows[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses[step - start] = loss.detach()
        return losses

    def evaluate(self, model: TinyGPT, point: int, losses: Tensor | None) -> dict[str, float]:
        model.eval()
        eval_data = self.corpus.windows("held_out", self.model.n_ctx, EVAL_WINDOWS, seed=12345)
        return {"train_loss": losses[-1].item() if losses is not None else float("nan"),
                "held_out_loss": mean_loss(model, *eval_data)}

    def line(self, point: int, row: dict[str, float]) -> str:
        return (f"step {point:>6}/{self.steps}  train_loss {row['train_loss']:.4f}  "
                f"held_out_loss {row['held_out_loss']:.4f}")

    def describe(self) -> dict:
        settings = {item.name: getattr(self, item.name) for item in fields(self)
                    if item.name != "corpus"}
        return {"run_config": {**settings, "model": asdict(self.model)},
                "vocabulary": self.corpus.vocabulary}

    def results(self, model: TinyGPT, curve: dict[str, list]) -> dict:
        held_out = curve.get("held_out_loss")
        return {"held_out_loss": held_out[-1] if held_out else None}

    def load(self, checkpoint: dict, path: Path | None) -> TinyGPT:
        return model_from_checkpoint(checkpoint)


@torch.no_grad()
def mean_loss(model: TinyGPT, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()


def train(run: TinyGPTRun, corpus: TextCorpus, path: Path | None = None,
          resume: dict | None = None, log: Callable[[str], None] | None = print) -> TrainResult:
    """Train ``run`` on ``corpus`` from scratch or from the checkpoint dict ``resume``."""
    return loop.train(replace(run, corpus=corpus), path, resume, log)


def load_or_train(run: TinyGPTRun, corpus: TextCorpus, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult:
    """The model of ``run`` after ``run.steps`` steps: from the cache, resumed, or trained."""
    return loop.load_or_train(replace(run, corpus=corpus), checkpoint_dir, log)


def model_from_checkpoint(checkpoint: dict | str | Path) -> TinyGPT:
    """The trained GPT stored in ``checkpoint`` (a dict or a file), in eval mode."""
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    model = TinyGPT(TinyGPTConfig(**checkpoint["trajectory"]["model"]))
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


def prepare(cfg: RunConfig) -> Prepared:
    """The cached (or trained) GPT, train windows for the basis, held-out windows (inputs, next
    characters) for the CE-loss ablations, and the training record."""
    corpus = load_corpus(cfg.data.path, cfg.data.held_out_fraction, dump_kjv=cfg.data.dump_kjv)
    m = cfg.model
    model_cfg = TinyGPTConfig(d_vocab=corpus.d_vocab, n_ctx=cfg.data.context, d_model=m.d_model,
                              n_layers=m.n_layers, n_heads=m.n_heads, d_mlp=m.d_mlp)
    t = cfg.train
    run = TinyGPTRun(model=model_cfg, fingerprint=corpus.fingerprint,
                     held_out_fraction=cfg.data.held_out_fraction, seed=cfg.seed, steps=t.steps,
                     batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                     warmup_steps=t.warmup_steps, eval_every=t.eval_every, threads=cfg.threads,
                     corpus=corpus)
    result = loop.cached_model(cfg.paths, run, cfg.progress)
    basis_split = "train" if cfg.method.basis_split == "train" else "held_out"
    # fixed data seeds: every method and model seed sees the same windows
    basis_inputs, _ = corpus.windows(basis_split, cfg.data.context, cfg.data.basis_samples, 1)
    ablation_split = "train" if cfg.ablation.split == "train" else "held_out"
    ablation_data = corpus.windows(ablation_split, cfg.data.context, cfg.data.ablation_samples, 2)
    checkpoint = result.checkpoint
    summary = {"train/step": int(checkpoint["step"]),
               "train/held_out_loss": checkpoint["held_out_loss"],
               "train/steps_trained_now": result.steps_trained,
               "train/seconds": round(float(checkpoint["train_seconds"]), 1),
               "train/checkpoint": result.path.name if result.path else "",
               "data/fingerprint": corpus.fingerprint, "data/d_vocab": corpus.d_vocab,
               "data/context": cfg.data.context, "data/basis_samples": cfg.data.basis_samples}
    return Prepared(model=result.model, basis_inputs=basis_inputs, ablation_data=ablation_data,
                    score="cross_entropy", summary=summary, checkpoint=result.path,
                    curve=checkpoint["curve"])


FAMILY_SPEC = Family(FAMILY, prepare)
