"""Hydra composition and the schema: every config file composes; bad values get one clear line."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from interbasis.config import ConfigError, validate
from interbasis.run import CONFIG_DIR


def composed(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=False)
    return OmegaConf.to_container(cfg, resolve=True)


def group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def test_defaults_compose_and_validate():
    cfg = validate(composed([]))
    assert cfg.model.family == "modadd" and cfg.method.name == "lib"
    assert cfg.model.node_layers[-1] == "output"
    assert Path(cfg.paths.runs).is_absolute() and cfg.paths.runs.startswith(cfg.paths.results)


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = validate(composed([f"experiment={experiment}"]))
    assert cfg.experiment_name == experiment


@pytest.mark.parametrize("sweep", group_options("sweep"))
def test_every_sweep_composes(sweep):
    validate(composed([f"sweep={sweep}"]))


@pytest.mark.parametrize("group", ["method", "logger", "debug"])
def test_every_group_option_composes(group):
    for option in group_options(group):
        validate(composed([f"{group}={option}"]))


def test_paper_preset_matches_the_spec():
    cfg = validate(composed(["experiment=modadd_paper"]))
    assert (cfg.train.steps, cfg.train.lr, cfg.train.weight_decay) == (60000, 1e-3, 1.0)
    assert cfg.train.betas == (0.9, 0.98) and cfg.train.warmup_steps == 10
    assert (cfg.data.p, cfg.data.train_fraction) == (113, 0.3)
    assert (cfg.model.d_model, cfg.model.n_heads, cfg.model.d_head, cfg.model.d_mlp) == (
        128, 4, 32, 512)
    assert cfg.method.truncation_threshold == 1e-15 and cfg.method.basis_split == "train"
    assert cfg.ablation.split == "test" and cfg.ablation.edge_delta == 0.001
    assert cfg.ablation.max_samples is None  # the paper scores the whole test split
    assert validate(composed([])).ablation.max_samples == 2000  # the quick default run


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_presets_score_the_whole_split(experiment):
    """Only the bare default run ablates on a subset; a preset reproduces a paper setting."""
    assert validate(composed([f"experiment={experiment}"])).ablation.max_samples is None


def test_results_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    cfg = validate(composed([]))
    assert cfg.paths.runs == f"{tmp_path}/runs"


@pytest.mark.parametrize(("override", "message"), [
    ("seed=-1", r"seed = -1: Input should be greater than or equal to 0"),
    ("threads=abc", r"threads = 'abc': Input should be a valid integer"),
    ("method.integration=simpson", r"method.integration = 'simpson'.*'gradient'"),
    ("data.train_fraction=1.5", r"data.train_fraction = 1.5: Input should be less than 1"),
    ("+model.d_modle=3", r"unknown key 'model.d_modle'"),
])
def test_bad_values_give_one_line_naming_the_field(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate(composed([override]))
    assert len(str(caught.value).splitlines()) == 1
