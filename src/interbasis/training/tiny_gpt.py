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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from interbasis.config import RunConfig
from interbasis.data.text import TextCorpus, load_corpus
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig
from interbasis.pipeline import Prepared
from interbasis.training.cache import model_cache_dir
from interbasis.training.checkpoint import (
    check_config_matches,
    checkpoint_path,
    load_checkpoint,
    load_resume_or_train,
    save_checkpoint,
)
from interbasis.training.progress import time_left

FAMILY = "tiny_gpt"
EVAL_WINDOWS = 64  # held-out windows for the training curve (a fixed set)


@dataclass(frozen=True)
class TinyGPTRun:
    """One training run. Everything but ``steps``, ``eval_every`` and ``threads`` is in the key."""

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

    def trajectory(self) -> dict:
        return {"family": FAMILY, "seed": self.seed, "fingerprint": self.fingerprint,
                "held_out_fraction": self.held_out_fraction, "model": asdict(self.model),
                "optim": {"batch_size": self.batch_size, "lr": self.lr,
                          "weight_decay": self.weight_decay, "warmup_steps": self.warmup_steps}}


@dataclass
class TrainResult:
    model: TinyGPT
    checkpoint: dict
    path: Path | None
    steps_trained: int


@torch.no_grad()
def mean_loss(model: TinyGPT, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()


def train(run: TinyGPTRun, corpus: TextCorpus, path: Path | None = None,
          resume: dict | None = None, log: Callable[[str], None] | None = print) -> TrainResult:
    """Train ``run`` from scratch or from the checkpoint dict ``resume``; save at the end."""
    if corpus.fingerprint != run.fingerprint:
        raise ValueError(f"run is for corpus {run.fingerprint}, got {corpus.fingerprint}")
    log = log or (lambda line: None)
    previous_threads = torch.get_num_threads()
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    try:
        model = TinyGPT(run.model, seed=run.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.99),
                                      weight_decay=run.weight_decay)
        curve: dict[str, list] = {"step": [], "train_loss": [], "held_out_loss": []}
        step = 0
        if resume is not None:
            check_config_matches(resume["trajectory"], run.trajectory(), "training", path)
            model.load_state_dict(resume["model_state"])
            optimizer.load_state_dict(resume["optimizer_state"])
            curve = {key: list(values) for key, values in resume["curve"].items()}
            step = resume["step"]
        start_step, started = step, time.perf_counter()
        eval_data = corpus.windows("held_out", run.model.n_ctx, EVAL_WINDOWS, seed=12345)
        text = corpus.split("train")
        offsets = torch.arange(run.model.n_ctx + 1)
        train_loss = float("nan")
        while step < run.steps:
            generator = torch.Generator().manual_seed(run.seed * 1_000_003 + step)
            starts = torch.randint(0, len(text) - run.model.n_ctx - 1, (run.batch_size,),
                                   generator=generator)
            rows = text[starts[:, None] + offsets]
            for group in optimizer.param_groups:
                group["lr"] = run.lr * min(1.0, (step + 1) / max(1, run.warmup_steps))
            model.train()
            loss = F.cross_entropy(model(rows[:, :-1]).flatten(0, 1), rows[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            train_loss = loss.item()
            if not torch.isfinite(loss):
                raise RuntimeError(f"training diverged at step {step} (seed {run.seed})")
            if step % run.eval_every == 0 or step == run.steps:
                model.eval()
                held_out = mean_loss(model, *eval_data)
                for key, value in zip(curve, (step, train_loss, held_out), strict=True):
                    curve[key].append(value)
                log(f"step {step:>6}/{run.steps}  train_loss {train_loss:.4f}  held_out_loss "
                    f"{held_out:.4f}  {time_left(step, run.steps, start_step, started)}")
        model.eval()
        checkpoint = {
            "family": FAMILY, "seed": run.seed, "step": step, "trajectory": run.trajectory(),
            "run_config": asdict(run),
            "model_state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "curve": curve, "vocabulary": corpus.vocabulary,
            "held_out_loss": curve["held_out_loss"][-1] if curve["held_out_loss"] else None,
            "train_seconds": time.perf_counter() - started,
            "torch_version": str(torch.__version__)}
        if path is not None and step > start_step:
            save_checkpoint(path, checkpoint)
        return TrainResult(model, checkpoint, path, step - start_step)
    finally:
        torch.set_num_threads(previous_threads)


def load_or_train(run: TinyGPTRun, corpus: TextCorpus, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult:
    """The model of ``run`` after ``run.steps`` steps: from the cache, resumed, or trained."""
    path = checkpoint_path(checkpoint_dir, FAMILY, run.seed, run.trajectory())
    return load_resume_or_train(
        path, "step", run.steps, run.trajectory(),
        train=lambda resume: train(run, corpus, path, resume, log),
        loaded=lambda checkpoint: TrainResult(model_from_checkpoint(checkpoint), checkpoint, path,
                                              steps_trained=0),
        log=log)


def model_from_checkpoint(checkpoint: dict | str | Path) -> TinyGPT:
    """The trained GPT stored in ``checkpoint`` (a dict or a file), in eval mode."""
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    model = TinyGPT(TinyGPTConfig(**checkpoint["trajectory"]["model"]))
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


def prepare(cfg: RunConfig) -> Prepared:
    """The pipeline's hook: the cached (or trained) GPT, train windows for the basis, held-out
    windows (inputs, next characters) for the CE-loss ablations, and the training record."""
    corpus = load_corpus(cfg.data.path, cfg.data.held_out_fraction, dump_kjv=cfg.data.dump_kjv)
    m = cfg.model
    model_cfg = TinyGPTConfig(d_vocab=corpus.d_vocab, n_ctx=cfg.data.context, d_model=m.d_model,
                              n_layers=m.n_layers, n_heads=m.n_heads, d_mlp=m.d_mlp)
    t = cfg.train
    run = TinyGPTRun(model=model_cfg, fingerprint=corpus.fingerprint,
                     held_out_fraction=cfg.data.held_out_fraction, seed=cfg.seed, steps=t.steps,
                     batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                     warmup_steps=t.warmup_steps, eval_every=t.eval_every, threads=cfg.threads)
    # committed paper models are read in place; every other model is cached in paths.cache
    cache = model_cache_dir(cfg.paths, FAMILY, run.seed, run.trajectory(), run.steps)
    result = load_or_train(run, corpus, cache,
                           log=None if cfg.progress is False else print)
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
                    score="cross_entropy", summary=summary)
