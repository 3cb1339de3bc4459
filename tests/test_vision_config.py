"""The vision presets compose to the E2 settings; family-specific keys are checked per family."""

import pytest
from hydra import compose, initialize_config_dir

from hydra_runs import composed
from interbasis.config import ConfigError, validate
from interbasis.run import CONFIG_DIR
from interbasis.training.modadd import ModAddRunConfig
from interbasis.training.vision import VisionRunConfig

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline


@pytest.mark.parametrize(("experiment", "dataset"), [("cifar_paper", "cifar10"),
                                                     ("fashion_mlp", "fashion_mnist")])
def test_vision_presets_match_e2(experiment, dataset):
    cfg = validate(composed([f"experiment={experiment}"]))
    assert isinstance(cfg, VisionRunConfig) and cfg.data.name == dataset
    assert cfg.model.hidden == [100, 100] and cfg.model.node_layers == ["0", "2", "4", "output"]
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (12, 64, 1e-3)
    assert cfg.train.train_samples is None and cfg.data.basis_samples == 10000
    assert cfg.method.truncation_threshold == 1e-15 and cfg.method.basis_split == "train"
    assert cfg.ablation.split == "test"


def test_the_default_run_is_still_modular_addition():
    assert isinstance(validate(composed([])), ModAddRunConfig)


def test_paper_fashion_sweep_is_three_seeds_by_two_methods_on_one_thread():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sweep=paper_fashion"],
                      return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {"seed": "0,1,2", "method": "lib,pca"}
    assert cfg.experiment_name == "fashion_mlp" and cfg.threads == 1


@pytest.mark.parametrize(("overrides", "message"), [
    (["experiment=fashion_mlp", "+model.d_mlp=512"], r"^config error: unknown key 'model.d_mlp'$"),
    (["+train.epochs=3"], r"^config error: unknown key 'train.epochs'$"),
    (["experiment=fashion_mlp", "train.batch_size=0"],
     r"^config error: train.batch_size = 0: Input should be greater than or equal to 1$"),
    (["experiment=fashion_mlp", "data.name=mnist"],
     r"^config error: data.name = 'mnist': .*'fashion_mnist' or 'cifar10'"),
    # every family is named, whatever families come later
    (["model.family=resnet"],
     r"^config error: model.family = 'resnet': Input should be .*'modadd' or .*'vision'"
     r"( or '\w+')*$"),
])
def test_family_keys_are_checked_per_family_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate(composed(overrides))
    assert len(str(caught.value).splitlines()) == 1
