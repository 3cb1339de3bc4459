"""Training the vision models (docs/experiments.md E2: the MLP, and the small CNN of
``model.arch=cnn``) with Adam in minibatches, with a checkpoint cache.

The paper recipe: Adam lr 1e-3, batch 64, 12 epochs, cross-entropy, seed 0 (we run several). Each
epoch shuffles the training images with a generator seeded by (seed, epoch), so a run to 6 epochs
is a prefix of a run to 12: the cache key (:meth:`VisionRun.trajectory`) leaves the epoch count
out, and a shorter cached run is resumed. The key includes a fingerprint of the training images,
so fixture data and the real dataset never share a checkpoint.

From Python::

    data = load_image_split("fashion_mnist", "/usr/share/datasets/fashion-mnist")
    run = VisionRun.for_data(data, seed=0, train=VisionTrainConfig(epochs=12))
    result = load_or_train(run, data, "results/checkpoints/vision")

The pipeline calls :func:`prepare` (``python -m interbasis.run experiment=fashion_mlp``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from interbasis.analysis.classes import classifier_analysis
from interbasis.basis.types import Graph
from interbasis.config import ModelConfig, RunConfig, Strict
from interbasis.data.vision import ImageSplit, load_image_split
from interbasis.models.cnn import SmallCNN, image_shape
from interbasis.models.vision import make_mlp
from interbasis.training import loop
from interbasis.training.checkpoint import load_checkpoint
from interbasis.training.family import Family, Prepared
from interbasis.training.loop import TrainResult

FAMILY = "vision"
__all__ = ["FAMILY", "ImageDataConfig", "TrainResult", "VisionModelConfig", "VisionRun",
           "VisionRunConfig", "VisionTrainConfig"]


class VisionModelConfig(ModelConfig):
    family: Literal["vision"] = Field(description="MLP or CNN on images (docs/experiments.md E2)")
    arch: Literal["mlp", "cnn"] = Field("mlp", description="mlp: the paper's MLP on flattened "
                                        "pixels; cnn: interbasis.models.cnn.SmallCNN")
    hidden: list[int] = Field([100, 100], min_length=1, description="hidden widths of the MLP "
                              "(ReLU after each); input and output widths come from the dataset")
    channels: list[int] = Field([16, 32], min_length=2, max_length=2, description="channels of "
                                "the CNN's two stride-2 3x3 convolutions")

    def layer_names(self) -> set[str]:
        if self.arch == "cnn":
            return {"conv0", "conv1", "head"}
        return {str(2 * index) for index in range(len(self.hidden) + 1)}


class ImageDataConfig(Strict):
    name: Literal["fashion_mnist", "cifar10"] = Field(description="image dataset "
                                                      "(interbasis.data.vision)")
    root: str = Field(description="folder holding the dataset files")
    download: bool = Field(False, description="fetch the official archive if the files are missing "
                           "(CIFAR-10 only; its checksum is verified)")
    basis_samples: int | None = Field(10_000, ge=1, description="first N images of the basis "
                                      "split the basis is built on (the paper: 10k); null = all")


class VisionTrainConfig(Strict):
    epochs: int = Field(12, ge=0, description="passes over the training images")
    batch_size: int = Field(64, ge=1, description="images per Adam step")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")
    train_samples: int | None = Field(None, ge=1, description="first N training images used to "
                                      "train; null = all")


class VisionRunConfig(RunConfig):
    model: VisionModelConfig
    data: ImageDataConfig
    train: VisionTrainConfig


# debug=tiny: a 16-16 MLP (or an 8-8-channel CNN) on the first 2,000 training images, 1 epoch,
# basis on 1,000 images. Needs the dataset's files (Fashion-MNIST: data.root=<folder with the
# idx-ubyte files>).
TINY = {"model": {"hidden": [16, 16], "channels": [8, 8]}, "data": {"basis_samples": 1000},
        "train": {"epochs": 1, "train_samples": 2000}}


@dataclass(frozen=True)
class VisionRun:
    """One training run (the loop's recipe): the network, the seed and the run config's train
    section. Everything but ``train.epochs`` and ``threads`` is in the cache key."""

    dataset: str
    fingerprint: str  # ImageSplit.fingerprint of the training data
    d_in: int
    d_out: int
    hidden: tuple[int, ...] = (100, 100)
    arch: str = "mlp"  # "mlp" (hidden widths) or "cnn" (conv channels)
    channels: tuple[int, ...] = (16, 32)
    seed: int = 0
    train: VisionTrainConfig = field(default_factory=VisionTrainConfig)
    threads: int | None = field(default=None, compare=False)
    data: ImageSplit | None = field(default=None, compare=False, repr=False)

    family = FAMILY
    unit = "epoch"
    flush_denormal = False
    eval_at_start = True
    eval_every = save_every = 1  # a curve row and a checkpoint after every epoch
    snapshot_every = 0

    @classmethod
    def for_data(cls, data: ImageSplit, **settings: Any) -> VisionRun:
        return cls(dataset=data.name, fingerprint=data.fingerprint, d_in=data.n_features,
                   d_out=len(data.classes), data=data, **settings)

    def trajectory(self) -> dict:
        """Everything that determines the parameters after every epoch: the cache key."""
        train = self.train
        return {"family": FAMILY, "seed": self.seed, "dataset": self.dataset,
                "fingerprint": self.fingerprint, "train_samples": train.train_samples,
                "model": self.model_spec(),
                "optim": {"lr": train.lr, "betas": list(train.betas),
                          "batch_size": train.batch_size}}

    def model_spec(self) -> dict:
        # the MLP's spec has no "arch" key, so the cache keys of MLP checkpoints trained before
        # the CNN existed are unchanged
        if self.arch == "mlp":
            return {"d_in": self.d_in, "hidden": list(self.hidden), "d_out": self.d_out}
        return {"arch": self.arch, "dataset": self.dataset, "d_in": self.d_in,
                "channels": list(self.channels), "d_out": self.d_out}

    @property
    def total(self) -> int:
        return self.train.epochs

    @property
    def steps_per_unit(self) -> int:
        return math.ceil(len(self._train()[1]) / self.train.batch_size)

    def check(self) -> None:
        data = self._data()
        if self.fingerprint != data.fingerprint or self.d_in != data.n_features:
            raise ValueError(f"run is for {self.dataset} data {self.fingerprint} with "
                             f"{self.d_in} inputs, got {data.name} data {data.fingerprint} with "
                             f"{data.n_features}")

    def build(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = make_model(self.model_spec(), seed=self.seed)
        return model, torch.optim.Adam(model.parameters(), lr=self.train.lr,
                                       betas=self.train.betas)

    def advance(self, model: nn.Module, optimizer: torch.optim.Optimizer, start: int,
                end: int) -> Tensor:
        images, labels = self._train()
        model.train()
        losses = []
        for epoch in range(start, end):
            for batch in epoch_order(self, epoch, len(labels)).split(self.train.batch_size):
                loss = F.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
        return torch.stack(losses)

    def evaluate(self, model: nn.Module, point: int, losses: Tensor | None) -> dict[str, float]:
        images, labels = self._train()
        train_loss, train_acc = evaluate(model, images, labels)
        data = self._data()
        test_loss, test_acc = evaluate(model, data.test_images, data.test_labels)
        return {"step": point * self.steps_per_unit, "train_loss": train_loss,
                "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}

    def line(self, point: int, row: dict[str, float]) -> str:
        return (f"epoch {point:>3}/{self.total}  train_loss {row['train_loss']:.4f}  train_acc "
                f"{row['train_acc']:.4f}  test_loss {row['test_loss']:.4f}  test_acc "
                f"{row['test_acc']:.4f}")

    def describe(self) -> dict:
        return {"run_config": {"dataset": self.dataset, "fingerprint": self.fingerprint,
                               "d_in": self.d_in, "d_out": self.d_out, "hidden": list(self.hidden),
                               "arch": self.arch, "channels": list(self.channels),
                               "seed": self.seed, **self.train.model_dump(),
                               "betas": list(self.train.betas), "threads": self.threads}}

    def results(self, model: nn.Module, curve: dict[str, list]) -> dict:
        return {"train_acc": curve["train_acc"][-1], "test_acc": curve["test_acc"][-1]}

    def load(self, checkpoint: dict, path: Path | None) -> nn.Module:
        return model_from_checkpoint(checkpoint)

    def _data(self) -> ImageSplit:
        if self.data is None:
            raise ValueError("VisionRun.for_data(data, ...) gives the run its images")
        return self.data

    def _train(self) -> tuple[Tensor, Tensor]:
        data, first = self._data(), self.train.train_samples
        return data.train_images[:first], data.train_labels[:first]


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
          log: Callable[[str], None] | None = print) -> TrainResult[nn.Module]:
    """Train ``run`` on ``data`` from scratch or from the checkpoint dict ``resume``."""
    return loop.train(_with_data(run, data), path, resume, log)


def load_or_train(run: VisionRun, data: ImageSplit, checkpoint_dir: str | Path,
                  log: Callable[[str], None] | None = print) -> TrainResult[nn.Module]:
    """The model of ``run`` after ``run.train.epochs`` epochs: from the cache, resumed, or
    trained."""
    return loop.load_or_train(_with_data(run, data), checkpoint_dir, log)


def _with_data(run: VisionRun, data: ImageSplit) -> VisionRun:
    return run if run.data is data else replace(run, data=data)


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


def run_from_config(cfg: VisionRunConfig, data: ImageSplit) -> VisionRun:
    """The training run a validated run config asks for on ``data`` (its cache entry)."""
    return VisionRun.for_data(data, hidden=tuple(cfg.model.hidden), arch=cfg.model.arch,
                              channels=tuple(cfg.model.channels), seed=cfg.seed,
                              train=cfg.train, threads=cfg.threads)


def prepare(cfg: VisionRunConfig) -> Prepared:
    """The cached (or trained) MLP or CNN, the first ``data.basis_samples`` images of the basis
    split, the ablation split, the class analysis, and the training record."""
    data = load_image_split(cfg.data.name, cfg.data.root, download=cfg.data.download)
    run = run_from_config(cfg, data)
    result = loop.cached_model(cfg.paths, run, cfg.progress)
    test_images, test_labels = data.split("test")
    checkpoint = result.checkpoint
    summary = {"train/epoch": int(checkpoint["epoch"]), "train/step": int(checkpoint["step"]),
               "train/train_acc": checkpoint["train_acc"], "train/test_acc": checkpoint["test_acc"],
               **loop.train_summary(result), "data/fingerprint": data.fingerprint}
    hidden_layers = [name for name in cfg.model.node_layers[1:] if name != "output"]

    def analyse(model: nn.Module, graph: Graph) -> dict[str, pd.DataFrame | float | int]:
        # class views on the test split (held out, like the ablations), hidden layers only: the
        # pixel layer's per-class means are the class-mean images, not features of the model
        return classifier_analysis(model, graph, hidden_layers, test_images, test_labels,
                                   data.classes, data.groups, summary_layer=hidden_layers[0])

    return Prepared(model=result.model,
                    basis_inputs=data.split(cfg.method.basis_split)[0][:cfg.data.basis_samples],
                    ablation_data=data.split(cfg.ablation.split), score="accuracy",
                    summary=summary, analyse=analyse if hidden_layers else None,
                    checkpoint=result.path, curve=checkpoint["curve"])


FAMILY_SPEC = Family(FAMILY, prepare, schema=VisionRunConfig, tiny=TINY, relu_layers=relu_layers)
