"""Sweep definitions: every W&B sweep command and every Hydra grid job composes into a valid run,
grid points land in distinct run directories, and the launcher presets compose."""

import itertools

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class
from omegaconf import OmegaConf

from interbasis.config import validate
from interbasis.results import run_name_from_overrides
from interbasis.run import CONFIG_DIR, PROJECT_ROOT, RUN_NAME_IGNORES
from interbasis.sweeps.wandb_sweep import (
    agent_command,
    commands,
    hydra_overrides,
    load_sweep,
    parameter_points,
)

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline

SWEEP_FILES = sorted((PROJECT_ROOT / "sweeps").glob("*.yaml"))
GRIDS = sorted(path.stem for path in (CONFIG_DIR / "sweep").glob("*.yaml"))


def run_dirs(override_lists: list[list[str]]) -> list[tuple[str, str]]:
    """(experiment_name, run name) of each job, after composing and validating its config."""
    dirs = []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for overrides in override_lists:
            cfg = compose(config_name="config", overrides=overrides)
            run = validate(OmegaConf.to_container(cfg, resolve=True))
            dirs.append((run.experiment_name,
                         run_name_from_overrides(overrides, ignore=RUN_NAME_IGNORES)))
    return dirs


def grid_choices(grid: str) -> list[list[str]]:
    """Per swept key of ``sweep=<grid>``, its overrides, parsed the way Hydra's sweeper does."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"sweep={grid}"],
                      return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN", f"sweep={grid} must set hydra.mode: MULTIRUN"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [[f"sweep={grid}"]] + [
        [f"{o.get_key_element()}={value}" for value in o.sweep_string_iterator()]
        if o.is_sweep_override() else [f"{o.get_key_element()}={o.value()}"] for o in parsed]


def grid_jobs(grid: str) -> list[list[str]]:
    return [list(job) for job in itertools.product(*grid_choices(grid))]


def covering(choices: list[list]) -> list[list]:
    """A few combinations in which every choice of every key appears at least once."""
    return [[options[i % len(options)] for options in choices]
            for i in range(max(len(options) for options in choices))]


def wandb_points(path, sample: bool) -> list[dict]:
    config = load_sweep(path)
    if not sample:
        return parameter_points(config)
    names = list(config["parameters"])
    per_name = [sorted({point[name] for point in parameter_points(config)}, key=str)
                for name in names]
    return [dict(zip(names, values)) for values in covering(per_name)]


def names_are_distinct(override_lists: list[list[str]]) -> bool:
    names = [run_name_from_overrides(overrides, ignore=RUN_NAME_IGNORES)
             for overrides in override_lists]
    return len(set(names)) == len(names)


def test_there_are_sweep_files_and_grids():
    assert {path.stem for path in SWEEP_FILES} >= {"modadd_seeds", "modadd_truncation"}
    assert {"paper_modadd", "tiny"} <= set(GRIDS)


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.stem)
def test_every_wandb_command_names_a_distinct_run(path):
    argvs = commands(path)
    assert argvs, f"{path.name} gives no command"
    for argv in argvs:
        assert argv[:4] == ["/usr/bin/env", "python", "-m", "interbasis.run"], argv
    # one experiment per file (experiment_name is fixed), so distinct names = distinct folders
    assert names_are_distinct([hydra_overrides(argv) for argv in argvs])


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.stem)
def test_every_wandb_parameter_value_composes(path):
    # Every value of every parameter in a few commands; the slow test composes all of them.
    config = load_sweep(path)
    run_dirs([hydra_overrides(agent_command(config, point))
              for point in wandb_points(path, sample=True)])


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.stem)
def test_every_wandb_command_composes(path):
    run_dirs([hydra_overrides(argv) for argv in commands(path)])


def test_wandb_parameters_become_hydra_overrides():
    config = load_sweep(PROJECT_ROOT / "sweeps" / "modadd_truncation.yaml")
    points = parameter_points(config)  # bayes: every listed value x both ends of the tau range
    assert len(points) == 2 * 2 * 5
    argv = agent_command(config, {"method": "pca", "method.truncation_threshold": 1e-9,
                                  "seed": 3})
    assert argv[-3:] == ["method=pca", "method.truncation_threshold=1e-09", "seed=3"]
    (experiment, _), = run_dirs([hydra_overrides(argv)])
    assert experiment == "modadd_truncation"


@pytest.mark.parametrize("grid", GRIDS)
def test_every_hydra_grid_value_composes_and_jobs_are_distinct(grid):
    assert len(grid_jobs(grid)) >= 2 and names_are_distinct(grid_jobs(grid))
    run_dirs(covering(grid_choices(grid)))


@pytest.mark.slow
@pytest.mark.parametrize("grid", GRIDS)
def test_every_hydra_grid_job_composes(grid):
    run_dirs(grid_jobs(grid))


@pytest.mark.parametrize(("sweep_file", "grid"), [
    ("modadd_seeds", "paper_modadd"), ("modadd_integration", "modadd_integration"),
    ("modadd_width", "modadd_width")])
def test_wandb_sweep_and_hydra_grid_share_their_runs(sweep_file, grid):
    # Same directories: runs finished by either way of launching are skipped by the other.
    argvs = commands(PROJECT_ROOT / "sweeps" / f"{sweep_file}.yaml")
    wandb_names = {run_name_from_overrides(hydra_overrides(argv), ignore=RUN_NAME_IGNORES)
                   for argv in argvs}
    grid_names = {run_name_from_overrides(job, ignore=RUN_NAME_IGNORES)
                  for job in grid_jobs(grid)}
    assert wandb_names == grid_names
    (wandb_experiment, _), (grid_experiment, _) = run_dirs(
        [hydra_overrides(argvs[0]), grid_jobs(grid)[0]])
    assert wandb_experiment == grid_experiment


@pytest.mark.parametrize(("preset", "target", "settings"), [
    ("local", "JoblibLauncher", {"n_jobs": 2, "prefer": "processes"}),
    ("slurm", "SlurmLauncher", {"cpus_per_task": 1, "max_num_timeout": 3}),
])
def test_launcher_presets_compose(preset, target, settings):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={preset}"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == target  # the plugin is installed
    for key, value in settings.items():
        assert launcher[key] == value
    assert cfg.hydra.callbacks.sweep_report._target_ == "interbasis.sweeps.SweepReport"


def test_sweeps_readme_names_every_sweep_file_and_grid():
    readme = (PROJECT_ROOT / "sweeps" / "README.md").read_text()
    for path in SWEEP_FILES:
        assert f"sweeps/{path.name}" in readme, path.name
    for grid in GRIDS:
        assert f"sweep={grid}" in readme, grid


@pytest.mark.parametrize(("text", "message"), [
    ("parameters: {seed: {values: [0]}}", "needs 'parameters' and 'command'"),
    ("method: grid\ncommand: [x]\nparameters: {tau: {distribution: uniform, min: 0, max: 1}}",
     "grid sweep needs 'value' or 'values'"),
    ("method: bayes\ncommand: [x]\nparameters: {tau: {distribution: normal, mu: 0, sigma: 1}}",
     "distribution 'normal' is not supported"),
])
def test_bad_sweep_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        commands(path)


def test_a_command_that_is_not_interbasis_run_is_refused():
    with pytest.raises(ValueError, match="not a `-m interbasis.run` command"):
        hydra_overrides(["python", "train.py", "seed=1"])
