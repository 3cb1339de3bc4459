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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from interbasis.config import ModelConfig, RunConfig, Strict
from interbasis.data.text import TextCorpus, load_corpus
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig
from interbasis.training import loop
from interbasis.training.checkpoint import load_checkpoint
from interbasis.training.family import Family, Prepared
from interbasis.training.loop import TrainResult

FAMILY = "tiny_gpt"
EVAL_WINDOWS = 64  # held-out windows for the training curve (a fixed set)
__all__ = ["EVAL_WINDOWS", "FAMILY", "LMTrainConfig", "TextDataConfig", "TinyGPTModelConfig",
           "TinyGPTRun", "TinyGPTRunConfig", "TrainResult"]


class TinyGPTModelConfig(ModelConfig):
    family: Literal["tiny_gpt"] = Field(description="small pre-LayerNorm GPT trained here on a "
                                        "character corpus (docs/experiments.md E3)")
    d_model: int = Field(64, ge=1, description="residual stream width")
    n_layers: int = Field(2, ge=1, description="transformer blocks")
    n_heads: int = Field(4, ge=1, description="attention heads (d_model must divide by it)")
    d_mlp: int = Field(256, ge=1, description="MLP hidden width")

    def blocks(self) -> int:
        return self.n_layers

    def problems(self) -> list[str]:
        problems = []
        if self.d_model % self.n_heads:
            problems.append(f"model.d_model = {self.d_model}: must divide by model.n_heads = "
                            f"{self.n_heads}")
        return problems + super().problems()


class TextDataConfig(Strict):
    """A text corpus cut into windows: the tiny GPT's characters, and the pretrained LMs' tokens
    (``interbasis.training.hf_lm`` shares this section)."""

    name: Literal["text"] = Field(description="character-level text corpus (interbasis.data.text)")
    path: str = Field(description="UTF-8 text file (the KJV dump by default)")
    dump_kjv: bool = Field(True, description="if the file is missing, write the King James Bible "
                           "there with Debian's bible program (apt-get install bible-kjv)")
    held_out_fraction: float = Field(0.1, gt=0, lt=1, description="last share of the text held "
                                     "out (ablations are scored there)")
    context: int = Field(64, ge=2, description="tokens per window (tiny_gpt: characters, "
                         "and its n_ctx)")
    basis_samples: int = Field(64, ge=1, description="train windows the basis is built on")
    ablation_samples: int = Field(32, ge=1, description="held-out windows the ablations score")
    gram_samples: int | None = Field(None, ge=1, description="hf_lm: a separate set of train "
                                     "windows for the means and Grams (the authors' LM setting); "
                                     "null = the basis windows")
    dataset: str | None = Field(None, description="hf_lm: a datasets-library name (e.g. "
                                "roneneldan/TinyStories) whose text is written to `path` on first "
                                "use when online; null = `path` only")
    dataset_documents: int = Field(100_000, ge=1, description="documents of `dataset` kept")


class LMTrainConfig(Strict):
    steps: int = Field(2000, ge=0, description="AdamW steps on random train windows")
    batch_size: int = Field(32, ge=1, description="windows per step")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate (constant after warm-up)")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up steps")
    eval_every: int = Field(250, ge=1, description="steps between training-curve points")


class TinyGPTRunConfig(RunConfig):
    score: ClassVar[Literal["accuracy", "cross_entropy"]] = "cross_entropy"
    model: TinyGPTModelConfig
    data: TextDataConfig
    train: LMTrainConfig


# debug=tiny: a one-block 16-wide GPT, 30 steps, 16-character windows. Needs a text file:
# data.path=<UTF-8 file> (tests write their own); the KJV is never dumped.
TINY = {"model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_mlp": 32,
                  "node_layers": ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                                  "ln_final", "output"]},
        "data": {"dump_kjv": False, "context": 16, "basis_samples": 24, "ablation_samples": 16},
        "train": {"steps": 30, "warmup_steps": 5, "eval_every": 15},
        "method": {"n_sources": 1, "batch_size": 8},
        "ablation": {"max_samples": None, "deltas": [0.01, 0.05], "edge_delta": 0.05,
                     "batch_size": 16}}


@dataclass(frozen=True)
class TinyGPTRun:
    """One training run (the loop's recipe): the GPT, the corpus and the run config's train
    section. Everything but ``train.steps``, ``train.eval_every`` and ``threads`` is in the
    key."""

    model: TinyGPTConfig
    fingerprint: str  # of the corpus file
    held_out_fraction: float = 0.1
    seed: int = 0
    train: LMTrainConfig = field(default_factory=LMTrainConfig)
    threads: int | None = field(default=None, compare=False)
    corpus: TextCorpus | None = field(default=None, compare=False, repr=False)

    family = FAMILY
    unit = "step"
    flush_denormal = False
    eval_at_start = False
    snapshot_every = 0
    steps_per_unit = 1

    def trajectory(self) -> dict:
        train = self.train
        return {"family": FAMILY, "seed": self.seed, "fingerprint": self.fingerprint,
                "held_out_fraction": self.held_out_fraction, "model": asdict(self.model),
                "optim": {"batch_size": train.batch_size, "lr": train.lr,
                          "weight_decay": train.weight_decay,
                          "warmup_steps": train.warmup_steps}}

    @property
    def total(self) -> int:
        return self.train.steps

    @property
    def eval_every(self) -> int:
        return self.train.eval_every

    @property
    def save_every(self) -> int:
        return max(self.train.steps, 1)  # once, at the end

    def check(self) -> None:
        if self.corpus is None or self.corpus.fingerprint != self.fingerprint:
            found = self.corpus.fingerprint if self.corpus is not None else None
            raise ValueError(f"run is for corpus {self.fingerprint}, got {found}")

    def _corpus(self) -> TextCorpus:
        if self.corpus is None:
            raise ValueError("TinyGPTRun needs its corpus: replace(run, corpus=...)")
        return self.corpus

    def build(self) -> tuple[TinyGPT, torch.optim.Optimizer]:
        model = TinyGPT(self.model, seed=self.seed)
        return model, torch.optim.AdamW(model.parameters(), lr=self.train.lr, betas=(0.9, 0.99),
                                        weight_decay=self.train.weight_decay)

    def advance(self, model: TinyGPT, optimizer: torch.optim.Optimizer, start: int,
                end: int) -> Tensor:
        text = self._corpus().split("train")
        offsets = torch.arange(self.model.n_ctx + 1)
        losses = torch.empty(end - start, dtype=torch.float64)
        lr, batch_size, warmup = self.train.lr, self.train.batch_size, self.train.warmup_steps
        for step in range(start, end):
            # the windows of step s depend on (seed, s) only: a shorter run is a prefix
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            starts = torch.randint(0, len(text) - self.model.n_ctx - 1, (batch_size,),
                                   generator=generator)
            rows = text[starts[:, None] + offsets]
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / max(1, warmup))
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
        eval_data = self._corpus().windows("held_out", self.model.n_ctx, EVAL_WINDOWS, seed=12345)
        return {"train_loss": losses[-1].item() if losses is not None else float("nan"),
                "held_out_loss": mean_loss(model, *eval_data)}

    def line(self, point: int, row: dict[str, float]) -> str:
        return (f"step {point:>6}/{self.total}  train_loss {row['train_loss']:.4f}  "
                f"held_out_loss {row['held_out_loss']:.4f}")

    def describe(self) -> dict:
        return {"run_config": {"model": asdict(self.model), "fingerprint": self.fingerprint,
                               "held_out_fraction": self.held_out_fraction, "seed": self.seed,
                               **self.train.model_dump(), "threads": self.threads},
                "vocabulary": self._corpus().vocabulary}

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
          resume: dict | None = None, log: Callable[[str], None] | None = print
          ) -> TrainResult[TinyGPT]:
    """Train ``run`` on ``corpus`` from scratch or from the checkpoint dict ``resume``."""
    return loop.train(replace(run, corpus=corpus), path, resume, log)


def load_or_train(run: TinyGPTRun, corpus: TextCorpus, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult[TinyGPT]:
    """The model of ``run`` after ``run.train.steps`` steps: from the cache, resumed, or trained."""
    return loop.load_or_train(replace(run, corpus=corpus), checkpoint_dir, log)


def model_from_checkpoint(checkpoint: dict | str | Path) -> TinyGPT:
    """The trained GPT stored in ``checkpoint`` (a dict or a file), in eval mode."""
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    model = TinyGPT(TinyGPTConfig(**checkpoint["trajectory"]["model"]))
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


def run_from_config(cfg: TinyGPTRunConfig, corpus: TextCorpus) -> TinyGPTRun:
    """The training run a validated run config asks for on ``corpus`` (its cache entry)."""
    m = cfg.model
    model_cfg = TinyGPTConfig(d_vocab=corpus.d_vocab, n_ctx=cfg.data.context, d_model=m.d_model,
                              n_layers=m.n_layers, n_heads=m.n_heads, d_mlp=m.d_mlp)
    return TinyGPTRun(model=model_cfg, fingerprint=corpus.fingerprint,
                      held_out_fraction=cfg.data.held_out_fraction, seed=cfg.seed,
                      train=cfg.train, threads=cfg.threads, corpus=corpus)


def prepare(cfg: TinyGPTRunConfig) -> Prepared:
    """The cached (or trained) GPT, train windows for the basis, held-out windows (inputs, next
    characters) for the CE-loss ablations, and the training record."""
    corpus = load_corpus(cfg.data.path, cfg.data.held_out_fraction, dump_kjv=cfg.data.dump_kjv)
    run = run_from_config(cfg, corpus)
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


FAMILY_SPEC = Family(FAMILY, prepare, schema=TinyGPTRunConfig, tiny=TINY)
