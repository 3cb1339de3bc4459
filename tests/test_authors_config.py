"""experiment=modadd_authors and sweep=paper_modadd_authors: composition, checkpoint choice by
seed from paths.rib_repo, and the loud accuracy check (the last needs the authors' files)."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from authors_files import RIB_DIR, needs_authors, tl_state_of
from hydra_runs import composed
from interbasis.config import validate
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.run import CONFIG_DIR
from interbasis.training.modadd import AccuracyMismatch, prepare

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline


def test_the_authors_preset_loads_their_checkpoint_with_their_accuracy(tmp_path):
    cfg = validate(composed(["experiment=modadd_authors", "seed=3",
                             f"paths.rib_repo={tmp_path}"]))
    assert cfg.experiment_name == "modadd_authors"
    assert cfg.model.checkpoint == str(tmp_path)
    assert cfg.model.expected_accuracy == {0: 0.99955, 1: 0.99888, 2: 1.0, 3: 0.99978, 4: 1.0}
    assert (cfg.data.p, cfg.data.train_fraction, cfg.data.data_seed) == (113, 0.3, 0)
    assert cfg.method.truncation_threshold == 1e-15 and cfg.ablation.max_samples is None
    paper = validate(composed(["experiment=modadd_paper"]))
    assert paper.model.checkpoint is None  # our own preset still trains
    assert paper.model.node_layers == cfg.model.node_layers


def test_the_authors_sweep_is_five_seeds_by_lib_and_pca():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sweep=paper_modadd_authors"],
                      return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params == {"method": "lib,pca", "seed": "0,1,2,3,4"}
    assert cfg.experiment_name == "modadd_authors" and cfg.threads == 1


def test_ngf_is_a_method_choice():
    assert validate(composed(["experiment=modadd_authors", "method=ngf"])).method.name == "ngf"


def test_a_wrong_expected_accuracy_fails_loudly(tmp_path):
    """Our own untrained model saved as a TL state dict: about chance accuracy, not 0.99955."""
    (tmp_path / "seed0").mkdir()
    torch.save(tl_state_of(ModAddTransformer(ModAddTransformerConfig(), seed=0)),
               tmp_path / "seed0" / "model_epoch_60000.pt")
    cfg = validate(composed(["experiment=modadd_authors", f"paths.rib_repo={tmp_path}"]))
    with pytest.raises(AccuracyMismatch, match=r"test accuracy 0\.0\d+ .* expected 0\.99955"):
        prepare(cfg)
    cfg = validate(composed(["experiment=modadd_authors", f"paths.rib_repo={tmp_path}",
                             "seed=0", "~model.expected_accuracy"]))
    assert prepare(cfg).summary["train/checkpoint_run"] == "seed0"  # no expectation: loads


@needs_authors
def test_the_preset_prepares_the_authors_seed_with_its_accuracy():
    cfg = validate(composed(["experiment=modadd_authors", "seed=1",
                             f"paths.rib_repo={RIB_DIR}"]))
    prepared = prepare(cfg)
    assert prepared.summary["train/checkpoint_run"] == "seed1"
    assert round(prepared.summary["train/test_acc"], 5) == 0.99888
    assert prepared.summary["train/train_acc"] == 1.0
    assert prepared.basis_inputs.shape == (3830, 3)
