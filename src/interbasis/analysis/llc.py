"""Degeneracy as singular learning theory measures it: the local learning coefficient (LLC).

The LLC of a trained model w* is lambda(w*) in E_w[n L_n(w)] ~ n L_n(w*) + lambda / beta under the
local tempered posterior exp(-n beta L_n(w) - gamma / 2 |w - w*|^2); it is d / 2 for a regular
model with d parameters and smaller the more degenerate the model is (arXiv 2405.10927 reads the
three internal sources of figure 8 as reasons for a small LLC). It is estimated by SGLD with
devinterp (PyPI), the field's maintained sampler, on the model family's training loss and
training data:

    llc_hat = n beta * (mean SGLD loss after burn-in - L_n(w*))          (Lau et al. 2023)

devinterp 2 is written for language models: its dataset is a HuggingFace ``Dataset`` of
``input_ids`` and its loss a per-token loss of shape (batch, seq - 1). Any (inputs, targets) data
is fed to it as rows of indices ``[i, i]`` whose loss is the per-sample loss of row i, so the same
sampler serves regressions (the known-answer tests), modular addition, the vision models, the
tiny GPT (a row: one window of next-character predictions) and the polysemanticity toy.
``compute_llc`` of devinterp averages the burn-in steps too; the estimate here uses its per-draw
losses (after burn-in) instead, and keeps the whole per-step trace as ``llc_traces.csv``.

    estimate = estimate_llc(model, inputs, targets, per_sample_loss, LLCSettings(lr=1e-3))
    estimate.summary()   # {"degeneracy/llc": ..., "degeneracy/llc_std": ..., ...}

:func:`llc_stage` is the pipeline's hook (``analysis.llc=true``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interbasis.analysis.free_params import section_sizes

LLC_KEY = "degeneracy/llc"
TRACES = "llc_traces"  # the per-chain, per-step SGLD loss table in the run directory
OVER_TRAINING = "degeneracy_over_training"  # the snapshot table the LLC columns join
# Chains whose mean loss over the second half of their draws still differs from the first half by
# more than this share of (mean loss - init loss), averaged over chains, have not settled: the
# loss trace must be flat after burn-in (the calibration rule, with no failed chain and llc > 0).
MAX_DRIFT = 0.15

PerSampleLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]  # (model, x, y) -> loss (B,)


@dataclass(frozen=True)
class LLCSettings:
    """SGLD hyperparameters (the config's ``analysis.llc_*`` fields)."""

    lr: float = 1e-4  # step size epsilon
    localization: float = 100.0  # gamma: pull towards w*
    nbeta: float | None = None  # n * beta; None: n / log n (beta = 1 / log n, Watanabe's WBIC)
    chains: int = 4
    draws: int = 200
    burnin: int = 100
    batch_size: int = 64
    seed: int = 0

    def inverse_temperature(self, n: int) -> float:
        """n beta for n training samples. devinterp's own default_nbeta (batch / log batch,
        15 at batch 64) left the paper model's chains at chance-level loss (docs/llc.md)."""
        if self.nbeta is not None:
            return float(self.nbeta)
        return n / math.log(n) if n > 1 else 1.0


@dataclass
class LLCEstimate:
    """One LLC estimate: its value per chain, the loss traces and why it failed, if it did."""

    per_chain: list[float]
    init_loss: float
    traces: pd.DataFrame  # columns chain, step, loss (every SGLD step, burn-in included)
    drift: float  # |second-half - first-half mean loss| / (mean loss - init loss)
    diverged: str | None  # None, or one line saying which chains failed and how
    seconds: float
    nbeta: float = math.nan

    @property
    def llc(self) -> float | None:
        return None if self.diverged else float(np.mean(self.per_chain))

    @property
    def llc_std(self) -> float | None:
        return None if self.diverged else float(np.std(self.per_chain))

    @property
    def settled(self) -> bool:
        """The calibration rule: no chain failed, every chain settled, and llc > 0."""
        llc = self.llc  # a float whenever no chain diverged
        return self.diverged is None and self.drift <= MAX_DRIFT and llc is not None and llc > 0

    def summary(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            f"{LLC_KEY}_init_loss": self.init_loss, f"{LLC_KEY}_settled": int(self.settled),
            f"{LLC_KEY}_drift": self.drift, f"{LLC_KEY}_nbeta": self.nbeta,
            f"{LLC_KEY}_diverged": int(self.diverged is not None),
            "time/llc_s": round(self.seconds, 3)}
        llc, llc_std = self.llc, self.llc_std  # floats whenever no chain diverged
        if self.diverged is None and llc is not None and llc_std is not None:
            # a diverged estimate stores no LLC at all
            out.update({LLC_KEY: llc, f"{LLC_KEY}_std": llc_std})
        return out

    def line(self) -> str:
        if self.diverged:
            return f"LLC: {self.diverged}; no LLC stored"
        rule = "settled" if self.settled else f"NOT settled (drift {self.drift:.2f})"
        return (f"LLC {self.llc:.2f} +- {self.llc_std:.2f} over {len(self.per_chain)} chains, "
                f"{rule}, {self.seconds:.1f} s")


def estimate_llc(model: nn.Module, inputs: Tensor, targets: Tensor, loss: PerSampleLoss,
                 settings: LLCSettings, progress: bool = False,
                 n: int | None = None) -> LLCEstimate:
    """The LLC of ``model`` at its current weights on (inputs, targets) under ``loss``.

    ``loss(model, x, y)`` is the per-sample negative log-likelihood (cross-entropy; for a Gaussian
    regression with unit noise 0.5 |y - f(x)|^2): the LLC is defined for that scale. The model is
    not changed (devinterp samples on copies). Same settings and seed: the same estimate.
    ``progress=False`` hides devinterp's per-chain progress bars (they go to stderr). ``n``: the
    samples behind n beta when a row holds several (default: one per row).
    """
    from datasets import Dataset  # devinterp's own dependency; imported late (slow import)
    from devinterp.slt.sampling import sample

    logging.getLogger("devinterp").setLevel(logging.WARNING)  # its per-store INFO lines
    if len(inputs) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    if len(inputs) < settings.batch_size:
        raise ValueError(f"LLC batch_size {settings.batch_size} is larger than the "
                         f"{len(inputs)} training samples")
    device = next(model.parameters()).device
    inputs, targets = inputs.to(device), targets.to(device)
    rows = torch.arange(len(inputs))
    dataset = Dataset.from_dict({"input_ids": torch.stack([rows, rows], 1).tolist()})

    def per_token(sampled: _Wrapped, ids: Tensor) -> Tensor:
        index = ids[:, 0].to(device)
        return loss(sampled.inner, inputs[index], targets[index])[:, None]

    nbeta = settings.inverse_temperature(n or len(inputs))
    start = time.perf_counter()
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory(prefix="llc-") as scratch, quiet, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = sample(
            _Wrapped(model), dataset.with_format("torch"), {}, lr=settings.lr,
            n_beta=nbeta, localization=settings.localization,
            num_chains=settings.chains, num_draws=settings.draws,
            num_burnin_steps=settings.burnin, batch_size=settings.batch_size,
            init_seed=settings.seed, device=str(device),
            # L_n(w*) over one whole pass (the chains cycle over that same pass)
            num_init_loss_batches=len(inputs) // settings.batch_size,
            output_path=Path(scratch) / "samples.zarr", loss_fn=per_token)
        data = samples.dataset
        trace = data.sampling_loss_micro.mean(dim=["batch_sampling", "token_pos"]).values
        draws = data.sampling_loss.mean(dim=["batch", "token_pos"]).values  # (chain, draw)
        init_loss = float(data.init_loss.values.mean())
    failed = sorted({str(w.message) for w in caught if "Chain failed" in str(w.message)})
    return _assemble(trace, draws, init_loss, failed, settings, nbeta,
                     time.perf_counter() - start)


class _Wrapped(nn.Module):
    """The model under a name devinterp does not mistake for a TransformerLens model (it checks
    for ``model.cfg.n_heads``, which the modular-addition transformer also has)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner


def _assemble(trace: np.ndarray, draws: np.ndarray, init_loss: float, failed: list[str],
              settings: LLCSettings, nbeta: float, seconds: float) -> LLCEstimate:
    chains, steps = trace.shape
    traces = pd.DataFrame({"chain": np.repeat(np.arange(chains), steps),
                           "step": np.tile(np.arange(steps), chains),
                           "loss": trace.reshape(-1)})
    diverged = None
    if failed or not np.isfinite(draws).all():
        # a failed chain stops early; devinterp leaves its later steps at the zarr fill value
        what = f"{len(failed)} of {chains} chains failed" if failed else "non-finite draws"
        diverged = (f"chains diverged ({what}) at lr {settings.lr}, localization "
                    f"{settings.localization}" + (f": {failed[0]}" if failed else ""))
    per_chain = (nbeta * (draws.mean(axis=1) - init_loss)).tolist()
    half = draws.shape[1] // 2
    # pooled over chains, so that a drift all chains share shows and their noise partly cancels
    rise = float(np.mean(draws[:, -half:].mean(1) - draws[:, :half].mean(1))) if half else 0.0
    scale = max(abs(float(draws.mean()) - init_loss), 1e-12)
    drift = abs(rise) / scale if np.isfinite(draws).all() else math.inf
    return LLCEstimate(per_chain, init_loss, traces, drift, diverged, seconds, nbeta)


# --- model families: their training objective and their snapshots ------------------------------

def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per-sample float64 cross-entropy of ``model(x)`` (B, classes) against labels y."""
    forward = getattr(model, "forward_fast", model)  # modadd: same logits, faster on one thread
    return F.cross_entropy(forward(x).double(), y, reduction="none")


def token_cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per-window mean float64 next-token cross-entropy of ``model(x)`` (B, P, vocab) against
    y (B, P): every window holds P samples of the same weight (``LLCObjective.n`` counts them)."""
    logits = model(x).double()
    per_token = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return per_token.view(y.shape).mean(1)


def half_squared_error(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """0.5 |f(x) - y|^2 per sample: the Gaussian negative log-likelihood with unit noise (up to
    a constant), the scale the LLC is defined for when a model is trained on squared error."""
    return 0.5 * (model(x).double() - y.double()).square().sum(-1)


class TiedToy(nn.Module):
    """The polysemanticity toy y = ReLU(x W W^T) with its one tied W (n x m): the model it trains.
    ``as_sequential`` unties it into two Linear layers for the basis, which would double d."""

    def __init__(self, W: Tensor) -> None:
        super().__init__()
        self.W = nn.Parameter(W.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x @ self.W @ self.W.T)


@dataclass
class LLCObjective:
    """What the LLC samples: the model as trained, its training rows, their per-row loss, and n
    (the samples behind n beta: rows, or rows x positions for a language model's windows)."""

    model: nn.Module
    inputs: Tensor
    targets: Tensor
    loss: PerSampleLoss
    n: int


GPT_WINDOWS = 1024  # tiny GPT: train windows (of data.context characters) sampled over


def training_objective(cfg, prepared) -> LLCObjective:
    """The family's training objective and data for its run config (``analysis.llc_samples``
    caps the rows; the poly toy's L1 penalty and the vision/GPT weight decay are priors, not
    part of the likelihood, and are left out)."""
    family, cap = cfg.model.family, cfg.analysis.llc_samples
    if family == "modadd":
        from interbasis.data.modadd import make_modadd_split
        from interbasis.training.modadd import run_from_config
        split = make_modadd_split(**run_from_config(cfg).data.split_settings())
        x, y, loss = split.train_tokens[:cap], split.train_labels[:cap], cross_entropy
    elif family == "vision":
        from interbasis.data.vision import load_image_split
        data = load_image_split(cfg.data.name, cfg.data.root, download=cfg.data.download)
        count = min(cfg.train.train_samples or len(data.train_images), cap or math.inf)
        x, y, loss = data.train_images[:count], data.train_labels[:count], cross_entropy
    elif family == "tiny_gpt":
        from interbasis.data.text import load_corpus
        corpus = load_corpus(cfg.data.path, cfg.data.held_out_fraction, dump_kjv=cfg.data.dump_kjv)
        # data seed 3: not the basis (1), ablation (2) or training-eval windows
        x, y = corpus.windows("train", cfg.data.context, cap or GPT_WINDOWS, seed=3)
        return LLCObjective(prepared.model, x, y, token_cross_entropy, x.numel())
    elif family == "poly_toy":
        model = TiedToy(prepared.model[1].weight)  # decode.weight is W itself
        eye = torch.eye(model.W.shape[0], dtype=model.W.dtype)[:cap]
        return LLCObjective(model, eye, eye, half_squared_error, len(eye))
    else:
        raise ValueError(f"analysis.llc: no training objective for model family {family!r} "
                         "(modadd, vision, tiny_gpt and poly_toy have one)")
    return LLCObjective(prepared.model, x, y, loss, len(x))


def snapshots(cfg, prepared) -> list[tuple[int, nn.Module]]:
    """The family's kept training snapshots (modadd with train.snapshot_every), else none."""
    if cfg.model.family != "modadd" or not cfg.train.snapshot_every:
        return []
    from interbasis.training.cache import model_cache_dir
    from interbasis.training.modadd import FAMILY, load_snapshots, run_from_config
    run = run_from_config(cfg)  # the folder prepare() read the model from (cache or committed)
    folder = model_cache_dir(cfg.paths, FAMILY, run.seed, run.trajectory(), run.train.steps)
    path = folder / str(prepared.summary["train/checkpoint"])
    steps = list(range(0, cfg.train.steps + 1, cfg.train.snapshot_every))
    return list(zip(steps, load_snapshots(path, steps), strict=True))


def settings_from_config(analysis) -> LLCSettings:
    return LLCSettings(lr=analysis.llc_lr, localization=analysis.llc_localization,
                       nbeta=analysis.llc_nbeta, chains=analysis.llc_chains,
                       draws=analysis.llc_draws, burnin=analysis.llc_burnin,
                       batch_size=analysis.llc_batch_size, seed=analysis.llc_seed)


def llc_stage(cfg, prepared, run_dir) -> None:
    """The pipeline hook: the LLC of the run's model and, with ``analysis.llc_over_training``,
    of each snapshot (columns of the degeneracy-over-training table, so W&B gets them by step).

    Adds the summary keys to ``prepared.summary``, writes ``llc_traces.csv`` (and
    ``llc_traces_over_training.csv``); with ``analysis.graph=false`` the pipeline builds no
    basis afterwards (``pipeline.wants_graph``).
    """
    settings = settings_from_config(cfg.analysis)
    log = (lambda line: None) if cfg.progress is False else print
    # first, so that a model it cannot read fails before the sampling, not after it
    from interbasis.families import family  # the family's ReLU layers (training/family.py)

    relu_layers = family(cfg.model.family).relu_layers(prepared.model)
    prepared.summary.update(section_sizes(prepared.model, prepared.basis_inputs,
                                          list(cfg.model.node_layers), relu_layers))
    objective = training_objective(cfg, prepared)
    inputs, targets, loss = objective.inputs, objective.targets, objective.loss
    estimate = estimate_llc(objective.model, inputs, targets, loss, settings, n=objective.n)
    run_dir.write_table(TRACES, estimate.traces)
    prepared.summary.update(estimate.summary())
    # the counting rule of docs/llc.md: every trainable weight and bias, embeddings included
    prepared.summary["model/n_params"] = sum(p.numel() for p in objective.model.parameters()
                                             if p.requires_grad)
    log(estimate.line())
    kept = snapshots(cfg, prepared) if cfg.analysis.llc_over_training else []
    every = cfg.analysis.llc_snapshot_every
    kept = [(step, model) for step, model in kept if not every or step % every == 0]
    if kept:
        rows, traces = [], []
        for step, model in kept:
            found = estimate_llc(model, inputs, targets, loss, settings, n=objective.n)
            log(f"step {step}: {found.line()}")
            rows.append({"step": step, **{k: v for k, v in found.summary().items()
                                          if k.startswith(LLC_KEY)},
                         "time/llc_s": found.seconds})
            traces.append(found.traces.assign(snapshot=step))
        table = pd.DataFrame(rows)
        run_dir.write_table(f"{TRACES}_over_training", pd.concat(traces, ignore_index=True))
        if OVER_TRAINING in prepared.history:
            prepared.history[OVER_TRAINING] = prepared.history[OVER_TRAINING].merge(
                table, on="step", how="left")
        else:
            prepared.history[OVER_TRAINING] = table


def calibration_table(runs_dir: str | Path) -> str:
    """The calibration grid of ``runs_dir`` (runs with analysis.llc_lr / llc_localization
    overrides) as a Markdown table: one row per localisation, one LLC cell per step size; a
    cell is marked with its drift when it fails the rule and "(> d/2)" above the regular value."""
    import yaml

    from interbasis.results import load_runs
    from interbasis.results.report import pipe_table

    runs_dir = Path(runs_dir)
    runs = load_runs(runs_dir.parent)
    runs = runs[runs["experiment"] == runs_dir.name] if not runs.empty else runs
    if runs.empty:
        raise ValueError(f"no complete runs in {runs_dir}")
    cells, lrs, gammas = {}, set(), set()
    for _, run in runs.iterrows():
        analysis = yaml.safe_load((Path(run["path"]) / "config.yaml").read_text())["analysis"]
        key = (float(analysis["llc_localization"]), float(analysis["llc_lr"]))
        lrs.add(key[1])
        gammas.add(key[0])
        if run.get(f"{LLC_KEY}_diverged") == 1:
            cells[key] = "diverged"
        else:
            mark = "" if run.get(f"{LLC_KEY}_settled") == 1 else " (drift "
            mark += "" if not mark else f"{run[f'{LLC_KEY}_drift']:.2f})"
            # no learning coefficient exceeds the regular model's d / 2: above it the chains
            # are not sampling the local posterior (a step too large for the stiffest directions)
            if run[LLC_KEY] > run.get("model/n_params", math.inf) / 2:
                mark += " (> d/2)"
            cells[key] = f"{run[LLC_KEY]:.1f} \u00b1 {run[f'{LLC_KEY}_std']:.1f}{mark}"
    header = ["gamma \\ epsilon", *(f"{lr:g}" for lr in sorted(lrs))]
    rows = [[f"{gamma:g}", *(cells.get((gamma, lr), "-") for lr in sorted(lrs))]
            for gamma in sorted(gammas)]
    return pipe_table(header, rows)


if __name__ == "__main__":
    import sys

    print(calibration_table(sys.argv[1] if len(sys.argv) > 1 else "results/runs/llc_calibration"))
