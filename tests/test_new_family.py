"""Adding a family is one module and one config file: a brand-new family (a small MLP on Gaussian
blobs) written here as exactly those two files, outside the source tree, composes, validates,
shrinks with debug=tiny and runs through the pipeline.

- the module: ``blobs_mlp.py`` in a folder put on ``interbasis.training.__path__`` (in the tree
  it would be ``src/interbasis/training/blobs_mlp.py``): its schema, ``prepare`` and
  ``FAMILY_SPEC = Family(..., schema=..., tiny=...)``;
- the config file: ``family/blobs_mlp.yaml`` on a Hydra search path (in the tree,
  ``conf/family/blobs_mlp.yaml``): its node layers and data choice.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

import interbasis.training
from hydra_runs import composed, run_in_process
from interbasis import config, families

pytestmark = pytest.mark.integration

MODULE = '''
"""A small MLP classifying Gaussian blobs, trained in prepare (no cache)."""

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from interbasis.config import ModelConfig, RunConfig, Strict
from interbasis.training.family import Family, Prepared


class BlobsModelConfig(ModelConfig):
    family: Literal["blobs_mlp"] = Field(description="an MLP on Gaussian blobs")
    hidden: int = Field(16, ge=1, description="hidden width")

    def layer_names(self) -> set[str]:
        return {"0", "2"}


class BlobsDataConfig(Strict):
    name: Literal["blobs"] = Field(description="4 Gaussian blobs in the plane")
    samples: int = Field(400, ge=8, description="points per split")


class BlobsTrainConfig(Strict):
    steps: int = Field(300, ge=0, description="full-batch Adam steps")
    lr: float = Field(0.05, gt=0, description="Adam learning rate")


class BlobsRunConfig(RunConfig):
    model: BlobsModelConfig
    data: BlobsDataConfig
    train: BlobsTrainConfig


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    centres = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    return centres[labels] + 0.5 * torch.randn(n, 2, generator=generator), labels


def prepare(cfg: BlobsRunConfig) -> Prepared:
    torch.manual_seed(cfg.seed)
    model = nn.Sequential(nn.Linear(2, cfg.model.hidden), nn.ReLU(),
                          nn.Linear(cfg.model.hidden, 4))
    x, y = blobs(cfg.data.samples, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    for _ in range(cfg.train.steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(x).argmax(-1) == y).double().mean().item()
    return Prepared(model=model.eval(), basis_inputs=x, ablation_data=blobs(cfg.data.samples, 2),
                    summary={"train/train_acc": accuracy, "train/steps": cfg.train.steps})


FAMILY_SPEC = Family("blobs_mlp", prepare, schema=BlobsRunConfig,
                     tiny={"data": {"samples": 64}, "train": {"steps": 40}},
                     relu_layers=lambda model: ["2"])
'''

CONFIG = """\
# @package _global_
# A small MLP on Gaussian blobs (the family's defaults: its module's schema).
model:
  family: blobs_mlp
  node_layers: ["0", "2", output]
data:
  name: blobs
"""


@pytest.fixture
def new_family(tmp_path, monkeypatch):
    """The two files, found the way every family is: the registry's discovery, Hydra's search
    path. Yields the override that adds the search path."""
    code, conf = tmp_path / "code", tmp_path / "conf"
    code.mkdir()
    (conf / "family").mkdir(parents=True)
    (code / "blobs_mlp.py").write_text(textwrap.dedent(MODULE))
    (conf / "family" / "blobs_mlp.yaml").write_text(CONFIG)
    monkeypatch.setattr(interbasis.training, "__path__",
                        [*interbasis.training.__path__, str(code)])
    families.refresh()
    config.register_defaults()
    yield f"hydra.searchpath=[file://{conf}]"
    monkeypatch.undo()
    sys.modules.pop("interbasis.training.blobs_mlp", None)
    families.refresh()


def test_a_new_family_is_one_module_and_one_config_file(new_family, tmp_path):
    assert "blobs_mlp" in families.FAMILIES and "blobs_mlp" in config.schemas()
    full = config.validate(composed([new_family, "family=blobs_mlp"]))
    assert type(full).__name__ == "BlobsRunConfig"
    assert (full.model.hidden, full.data.samples, full.train.steps) == (16, 400, 300)
    assert full.model.node_layers == ["0", "2", "output"]
    tiny = config.validate(composed([new_family, "family=blobs_mlp", "debug=tiny"]))
    assert (tiny.data.samples, tiny.train.steps, tiny.threads) == (64, 40, 1)
    with pytest.raises(config.ConfigError, match=r"unknown key 'model.d_mlp'"):
        config.validate(composed([new_family, "family=blobs_mlp", "+model.d_mlp=3"]))
    with pytest.raises(config.ConfigError, match=r"the model has no layer '4'"):
        config.validate(composed([new_family, "family=blobs_mlp",
                                  "model.node_layers=['0','4',output]"]))

    out = run_in_process(new_family, "family=blobs_mlp", "debug=tiny", "progress=false",
                         results=tmp_path / "results")
    assert out.returncode == 0, out.stderr
    assert "run complete:" in out.stdout
    summary = out.summary
    assert summary["model"] == "blobs_mlp" and summary["train/steps"] == 40
    assert summary["train/train_acc"] > 0.9  # four well-separated blobs
    assert "degeneracy/relu_sync/2" in summary and (out.run_dir / "graph_lib.pt").is_file()


def test_the_registry_forgets_a_family_whose_module_is_gone(new_family):
    assert "blobs_mlp" in families.FAMILIES
    interbasis.training.__path__ = interbasis.training.__path__[:-1]
    sys.modules.pop("interbasis.training.blobs_mlp", None)
    families.refresh()
    assert "blobs_mlp" not in families.FAMILIES
    with pytest.raises(config.ConfigError, match="no such family"):
        families.family("blobs_mlp")
