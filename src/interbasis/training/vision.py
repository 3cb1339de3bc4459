"""Training the vision models (docs/experiments.md E2: the MLP, and the small CNN of
``model.arch=cnn``) with Adam in minibatches, with a checkpoint cache.

The paper recipe: Adam lr 1e-3, batch 64, 12 epochs, cross-entropy, seed 0 (we run several). Each
epoch shuffles the training images with a generator seeded by (seed, epoch), so a run to 6 epochs
is a prefix of a run to 12: the cache key (:meth:`VisionRun.trajectory`) leaves the epoch count
out, and a shorter cached run is resumed. The key includes a fingerprint of the training images,
so fixture data and the real dataset never share a checkpoint.

From Python::

    data = load_image_split("fashion_mnist", "/usr/share/datasets/fashion-mnist")
    result = load_or_train(VisionRun.for_data(data, seed=0), data, "results/checkpoints/vision")

The pipeline calls :func:`prepare` (``python -m interbasis.run experiment=fashion_mlp``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interbasis.analysis.classes import classifier_analysis
from interbasis.config import RunConfig
from interbasis.data.vision import ImageSplit, load_image_split
from interbasis.models.cnn import SmallCNN, image_shape
from interbasis.models.vision import make_mlp
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

FAMILY = "vision"
CURVE_KEYS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc")


@dataclass(frozen=True)
class VisionRun:
    """One training run. Everything but ``epochs`` and ``threads`` is in the cache key."""

    dataset: str
    fingerprint: str  # ImageSplit.fingerprint of the training data
    d_in: int
    d_out: int
    hidden: tuple[int, ...] = (100, 100)
    arch: str = "mlp"  # "mlp" (hidden widths) or "cnn" (conv channels)
    channels: tuple[int, ...] = (16, 32)
    seed: int = 0
    train_samples: int | None = None  # first N training images; None = all
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 64
    epochs: int = 12
    threads: int | None = field(default=None, compare=False)

    @classmethod
    def for_data(cls, data: ImageSplit, **settings) -> VisionRun:
        return cls(dataset=data.name, fingerprint=data.fingerprint, d_in=data.n_features,
                   d_out=len(data.classes), **settings)

    def trajectory(self) -> dict:
        """Everything that determines the parameters after every epoch: the cache key."""
        return {"family": FAMILY, "seed": self.seed, "dataset": self.dataset,
                "fingerprint": self.fingerprint, "train_samples": self.train_samples,
                "model": self.model_spec(),
                "optim": {"lr": self.lr, "betas": list(self.betas),
                          "batch_size": self.batch_size}}

    def model_spec(self) -> dict:
        # the MLP's spec has no "arch" key, so the cache keys of MLP checkpoints trained before
        # the CNN existed are unchanged
        if self.arch == "mlp":
            return {"d_in": self.d_in, "hidden": list(self.hidden), "d_out": self.d_out}
        return {"arch": self.arch, "dataset": self.dataset, "d_in": self.d_in,
                "channels": list(self.channels), "d_out": self.d_out}


@dataclass
class TrainResult:
    """A trained model, its checkpoint, and the optimizer steps this call trained (0: cache hit)."""

    model: nn.Sequential
    checkpoint: dict
    path: Path | None
    steps_trained: int


@torch.no_grad()
def evaluate(model: nn.Module, images: Tensor, labels: Tensor,
             batch_size: int = 8192) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a split."""
    loss, correct = 0.0, 0
    for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
    return loss / len(labels), correct / len(labels)


def epoch_order(run: VisionRun, epoch: int, n: int) -> Tensor:
    """The shuffled image order of ``epoch`` (0-based): a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(run.seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def train(run: VisionRun, data: ImageSplit, path: Path | None = None, resume: dict | None = None,
          log: Callable[[str], None] | None = print) -> TrainResult:
    """Train ``run`` from scratch or from the checkpoint dict ``resume``, saving each epoch."""
    if run.fingerprint != data.fingerprint or run.d_in != data.n_features:
        raise ValueError(f"run is for {run.dataset} data {run.fingerprint} with {run.d_in} inputs, "
                         f"got {data.name} data {data.fingerprint} with {data.n_features}")
    previous_threads = torch.get_num_threads()
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    try:
        return _train(run, data, path, resume, log or (lambda line: None))
    finally:
        torch.set_num_threads(previous_threads)


def _train(run: VisionRun, data: ImageSplit, path: Path | None, resume: dict | None,
           log: Callable[[str], None]) -> TrainResult:
    images, labels = data.train_images[:run.train_samples], data.train_labels[:run.train_samples]
    model = make_model(run.model_spec(), seed=run.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.lr, betas=run.betas)
    curve: dict[str, list] = {key: [] for key in CURVE_KEYS}
    epoch = step = 0
    if resume is not None:
        check_config_matches(resume["trajectory"], run.trajectory(), "training", path)
        model.load_state_dict(resume["model_state"])
        optimizer.load_state_dict(resume["optimizer_state"])
        curve = {key: list(values) for key, values in resume["curve"].items()}
        epoch, step = resume["epoch"], resume["step"]
    start_step, start_epoch, started = step, epoch, time.perf_counter()

    def record() -> None:
        train_loss, train_acc = evaluate(model, images, labels)
        test_loss, test_acc = evaluate(model, data.test_images, data.test_labels)
        if not torch.isfinite(torch.tensor([train_loss, test_loss])).all():
            raise RuntimeError(f"training diverged: non-finite loss after epoch {epoch} "
                               f"(seed {run.seed}, lr {run.lr})")
        for key, value in zip(CURVE_KEYS, (epoch, step, train_loss, train_acc, test_loss,
                                           test_acc), strict=True):
            curve[key].append(value)
        log(f"epoch {epoch:>3}/{run.epochs}  train_loss {train_loss:.4f}  train_acc "
            f"{train_acc:.4f}  test_loss {test_loss:.4f}  test_acc {test_acc:.4f}  "
            f"{time_left(epoch, run.epochs, start_epoch, started)}")

    if not curve["epoch"]:
        record()
    model.train()
    while epoch < run.epochs:
        order = epoch_order(run, epoch, len(labels))
        for batch in order.split(run.batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        epoch += 1
        record()
        if path is not None:
            save_checkpoint(path, _checkpoint(run, model, optimizer, epoch, step, curve))
    model.eval()
    checkpoint = _checkpoint(run, model, optimizer, epoch, step, curve)
    return TrainResult(model, checkpoint, path, step - start_step)


def _checkpoint(run: VisionRun, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                step: int, curve: dict[str, list]) -> dict:
    return {
        "family": FAMILY,
        "seed": run.seed,
        "epoch": epoch,
        "step": step,
        "trajectory": run.trajectory(),
        "run_config": {**asdict(run), "hidden": list(run.hidden), "channels": list(run.channels),
                       "betas": list(run.betas)},
        "model_state": {name: value.detach().clone() for name, value in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "curve": {key: list(values) for key, values in curve.items()},
        "train_acc": curve["train_acc"][-1],
        "test_acc": curve["test_acc"][-1],
        "torch_version": str(torch.__version__),
    }


def load_or_train(run: VisionRun, data: ImageSplit, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult:
    """The model of ``run`` after ``run.epochs`` epochs: from the cache, resumed, or trained."""
    path = checkpoint_path(checkpoint_dir, FAMILY, run.seed, run.trajectory())
    return load_resume_or_train(
        path, "epoch", run.epochs, run.trajectory(),
        train=lambda resume: train(run, data, path, resume, log),
        loaded=lambda checkpoint: TrainResult(model_from_checkpoint(checkpoint), checkpoint, path,
                                              steps_trained=0),
        log=log)


def make_model(spec: dict, seed: int) -> nn.Module:
    """The MLP or the CNN that a checkpoint's ``trajectory["model"]`` describes."""
    if spec.get("arch", "mlp") == "mlp":
        return make_mlp(spec["d_in"], list(spec["hidden"]), spec["d_out"], seed=seed)
    return SmallCNN(image_shape(spec["dataset"], spec["d_in"]), list(spec["channels"]),
                    spec["d_out"], seed=seed)


def model_from_checkpoint(checkpoint: dict | str | Path) -> nn.Module:
    """The trained model stored in ``checkpoint`` (a dict or a file), in eval mode."""
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    model = make_model(checkpoint["trajectory"]["model"], seed=0)
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


def relu_layers(model: nn.Module) -> list[str]:
    """Modules whose input is a ReLU's output (``"2"``, ``"4"`` for the E2 MLP)."""
    if isinstance(model, SmallCNN):
        return model.relu_layers()
    children = list(model.named_children())
    return [name for (name, module), (_, before) in zip(children[1:], children[:-1])
            if isinstance(module, nn.Linear) and isinstance(before, nn.ReLU)]


def prepare(cfg: RunConfig) -> Prepared:
    """The pipeline's hook: the cached (or trained) MLP, the first ``data.basis_samples`` images
    of the basis split, the ablation split, the class analysis, and the training record."""
    data = load_image_split(cfg.data.name, cfg.data.root, download=cfg.data.download)
    run = VisionRun.for_data(data, hidden=tuple(cfg.model.hidden), arch=cfg.model.arch,
                             channels=tuple(cfg.model.channels), seed=cfg.seed,
                             train_samples=cfg.train.train_samples, lr=cfg.train.lr,
                             betas=tuple(cfg.train.betas), batch_size=cfg.train.batch_size,
                             epochs=cfg.train.epochs, threads=cfg.threads)
    # committed paper models are read in place; every other model is cached in paths.cache
    cache = model_cache_dir(cfg.paths, FAMILY, run.seed, run.trajectory(), run.epochs)
    result = load_or_train(run, data, cache,
                           log=None if cfg.progress is False else print)
    test_images, test_labels = data.split("test")
    checkpoint = result.checkpoint
    summary = {"train/epoch": int(checkpoint["epoch"]), "train/step": int(checkpoint["step"]),
               "train/train_acc": checkpoint["train_acc"], "train/test_acc": checkpoint["test_acc"],
               "train/steps_trained_now": result.steps_trained,
               "train/checkpoint": result.path.name if result.path else "",
               "data/fingerprint": data.fingerprint}
    hidden_layers = [name for name in cfg.model.node_layers[1:] if name != "output"]

    def analyse(model: nn.Module, graph) -> dict:
        # class views on the test split (held out, like the ablations), hidden layers only: the
        # pixel layer's per-class means are the class-mean images, not features of the model
        return classifier_analysis(model, graph, hidden_layers, test_images, test_labels,
                                   data.classes, data.groups, summary_layer=hidden_layers[0])

    return Prepared(model=result.model,
                    basis_inputs=data.split(cfg.method.basis_split)[0][:cfg.data.basis_samples],
                    ablation_data=data.split(cfg.ablation.split), score="accuracy",
                    summary=summary, analyse=analyse if hidden_layers else None,
                    relu_layers=relu_layers(result.model))
