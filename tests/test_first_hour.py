"""A newcomer's first hour: committed outputs stay as they are, mistakes get one line, runs say
what they do, files are readable by teammates (issue 14, parts 2 to 4)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hydra_runs import composed, run_cli
from interbasis.config import ConfigError, validate
from interbasis.overrides import check_overrides
from interbasis.run import CONFIG_DIR, PROJECT_ROOT, RUN_NAME_IGNORES
from interbasis.training.cache import DEFAULT_ROOT, model_cache_dir, read_manifest, sha256

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline

COMMITTED = PROJECT_ROOT / "results" / "runs"


def choices(group: str) -> str:
    """The choices of a config group on disk, as the one-line answers list them."""
    return ", ".join(sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml")))


# -- part 2: the tool never changes its own committed outputs ---------------------------------

def cache_dir_for(overrides: list[str], cache: Path) -> Path:
    from interbasis.training.modadd import FAMILY, run_from_config

    cfg = validate(composed(overrides))
    run = run_from_config(cfg)
    paths = SimpleNamespace(checkpoints=str(DEFAULT_ROOT), cache=str(cache))
    return model_cache_dir(paths, FAMILY, run.seed, run.trajectory(), run.train.steps)


def test_debug_and_new_models_go_to_the_cache_and_committed_ones_are_only_read(tmp_path):
    before = {name: entry["sha256"] for name, entry in read_manifest().items()}
    assert cache_dir_for([], tmp_path) == DEFAULT_ROOT / "modadd"  # the README's main job
    assert cache_dir_for(["debug=tiny"], tmp_path) == tmp_path / "modadd"
    assert cache_dir_for(["model.d_mlp=256"], tmp_path) == tmp_path / "modadd"
    # training a committed model further continues a copy; the committed file stays
    assert cache_dir_for(["train.steps=70000"], tmp_path) == tmp_path / "modadd"
    copies = list((tmp_path / "modadd").glob("modadd-seed0-*.pt"))
    assert len(copies) == 1 and sha256(copies[0]) == before[f"modadd/{copies[0].name}"]
    assert {name: sha256(DEFAULT_ROOT / name) for name in before} == before


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    out = run_cli("debug=tiny", results=results)
    assert out.returncode == 0, out.stderr[-2000:]
    return results, out


def test_a_debug_run_leaves_the_committed_checkpoint_folder_alone(debug_run):
    results, _ = debug_run
    assert not (results / "checkpoints").exists()
    assert len(list((results / "cache/checkpoints/modadd").glob("*.pt"))) == 1


def results_with_a_users_default_run(tmp_path: Path) -> Path:
    """A results store holding the committed experiments and a user's own ``default`` runs."""
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    for experiment in COMMITTED.iterdir():
        (runs / experiment.name).symlink_to(experiment)
    for method in ("lib", "pca"):
        shutil.copytree(COMMITTED / f"modadd_paper/method={method},seed=0",
                        runs / "default" / f"method={method}")
    return tmp_path / "results"


def test_a_users_own_runs_do_not_enter_the_committed_figures(tmp_path):
    from interbasis.figures.__main__ import build

    if not (COMMITTED / "modadd_paper").is_dir():
        pytest.skip("committed paper runs absent")
    results = results_with_a_users_default_run(tmp_path)
    assert build(results, tmp_path / "paper", only=[10]) == {10: "written"}
    committed = PROJECT_ROOT / "paper_figures"
    for name in ("fig10_cross_architecture.md", "fig10_cross_architecture.csv",
                 "fig10_cross_architecture.png", "fig10_cross_architecture.pdf"):
        # byte-identical: no user row, no timestamps or versions in the files
        assert (tmp_path / "paper" / name).read_bytes() == (committed / name).read_bytes(), name
    build(results, tmp_path / "mine", only=[10], experiments=["default", "modadd_paper"])
    rows = (tmp_path / "mine" / "fig10_cross_architecture.md").read_text()
    assert "| default |" in rows and "| tiny_gpt |" not in rows


# -- part 4: one line for every mistake --------------------------------------------------------

@pytest.mark.parametrize(("args", "line"), [
    (["methd=lib"], "config error: unknown key 'methd'; did you mean 'method'?"),
    (["model.d_modle=3"],
     "config error: unknown key 'model.d_modle'; did you mean 'model.d_model' or 'model.d_mlp'?"),
    (["trian.steps=3"], "config error: unknown key 'trian.steps'; did you mean 'train.steps'?"),
    (["experiment=tiny_gpt", "model.widht=3"],  # the keys of the chosen family
     "config error: unknown key 'model.widht'; model has: d_mlp, d_model, family, n_heads, "
     "n_layers, node_layers"),
    (["-m", "seed=0,1", "method=lib,foo"],
     f"config error: method=foo: no such method; choose one of: {choices('method')}"),
    (["experiment=nope"], "config error: experiment=nope: no such experiment; choose one of: "
     f"{choices('experiment')}"),
])
def test_mistyped_keys_and_choices_get_one_line(args, line):
    assert check_overrides(args, CONFIG_DIR) == line


def test_good_overrides_and_deliberate_additions_pass():
    assert check_overrides(["-m", "method=lib,pca", "seed=0,1", "model.d_mlp=64",
                            "hydra/launcher=local", "+extra=1", "debug=tiny"], CONFIG_DIR) is None


@pytest.mark.parametrize("args", [["methd=lib"], ["-m", "seed=0,1", "model.d_modle=3"]],
                         ids=["run", "multirun"])
def test_the_command_answers_a_mistyped_key_in_one_line_with_exit_2(args, tmp_path):
    out = run_cli(*args, results=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "did you mean" in out.stderr
    assert not (tmp_path / "runs").exists() and "+" not in out.stderr


@pytest.mark.parametrize(("override", "line"), [
    ("train.lr=inf", "config error: train.lr = inf: must be a finite number"),
    ("train.lr=nan", "config error: train.lr = nan: must be a finite number"),
    ("ablation.edge_delta=1.5", "config error: ablation.edge_delta = 1.5: modadd scores "
     "accuracy, which cannot drop by 1 or more; give a tolerance below 1"),
    ("ablation.deltas=[0.01,-0.1]", "config error: ablation.deltas = -0.1: a tolerance must be "
     "> 0"),
    ("model.node_layers=[output,blocks.0.hook_resid_pre]", "config error: model.node_layers = "
     "['output', 'blocks.0.hook_resid_pre']: 'output' can only be the last layer"),
])
def test_non_finite_and_incompatible_values_are_rejected(override, line):
    with pytest.raises(ConfigError) as error:
        validate(composed([override]))
    assert str(error.value) == line


def test_node_layers_missing_from_the_model_are_one_line(tmp_path, monkeypatch):
    from interbasis import pipeline

    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    cfg = validate(composed(["debug=tiny", "progress=false",
                             "model.node_layers=[blocks.0.hook_resid_pre,blocks.0.hook_resid_mdi,"
                             "output]"]))
    with pytest.raises(ConfigError) as error:
        pipeline.prepare(cfg)
    assert str(error.value) == ("config error: model.node_layers: 'blocks.0.hook_resid_mdi' not "
                                "in the modadd model; did you mean 'blocks.0.hook_resid_mid'?")


def test_help_lists_experiments_sweeps_groups_and_examples():
    out = subprocess.run([sys.executable, "-m", "interbasis.run", "--help"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(
                             PROJECT_ROOT / "src")})
    assert out.returncode == 0
    text = out.stdout
    assert text.startswith("interbasis: the Local Interaction Basis")
    for group in ("experiment", "sweep", "method"):  # every choice on disk, in order
        choices = sorted(path.stem for path in (PROJECT_ROOT / "conf" / group).glob("*.yaml"))
        assert f"{group}: {', '.join(choices)}" in text.splitlines()
    assert sum(line.startswith("  python -m interbasis.run") for line in text.splitlines()) == 5


def test_run_names_ignore_at_least_the_store_defaults():
    from interbasis.results import DEFAULT_IGNORED_OVERRIDES

    assert set(DEFAULT_IGNORED_OVERRIDES) <= set(RUN_NAME_IGNORES)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_run_files_get_the_umask_permissions(tmp_path, umask):
    import torch

    from interbasis.basis.types import atomic_torch_save
    from interbasis.results import RunDirectory
    from interbasis.training.checkpoint import save_checkpoint

    old = os.umask(umask)
    try:
        run = RunDirectory(tmp_path / "run")
        run.write_config({"seed": 0})
        run.write_summary({"x": 1.0})
        atomic_torch_save({"t": torch.zeros(1)}, tmp_path / "graph_lib.pt")
        save_checkpoint(tmp_path / "model.pt", {"step": 0})
    finally:
        os.umask(old)
    for path in (run.path / "config.yaml", run.path / "summary.json", tmp_path / "graph_lib.pt",
                 tmp_path / "model.pt"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_a_failed_run_marks_its_wandb_run_failed(tmp_path, monkeypatch):
    from interbasis import pipeline, runner
    from interbasis.results import RunDirectory
    from interbasis.tracking import Tracker

    finished = []

    class Recording(Tracker):
        def finish(self, exit_code: int = 0) -> None:
            finished.append(exit_code)

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "_start_tracker", lambda *args: Recording())
    monkeypatch.setattr(pipeline, "run", broken)
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    resolved = composed(["debug=tiny"])
    with pytest.raises(RuntimeError):
        runner.execute(validate(resolved), resolved, RunDirectory(tmp_path / "r"))
    assert finished == [1]


# -- part 3: a long run says what it is doing, and an interrupted one says so -----------------

def test_progress_lines_off_a_terminal(monkeypatch, caplog):
    from tqdm.auto import tqdm

    from interbasis.progress import describe_bar, progress_bars

    caplog.set_level("INFO", logger="interbasis")
    with progress_bars(None, interval=0.0) as bars:
        assert bars is True
        for _ in tqdm(range(3), desc="edge ablations", disable=not bars):
            pass
    lines = [record.getMessage() for record in caplog.records]
    assert lines and all(line.startswith("edge ablations: ") for line in lines)
    assert "3/3" in lines[-1] and "elapsed" in lines[-1]
    assert describe_bar("edge ablations:  40%|####      | 2/5 [00:30<00:45,  15.00s/it]") == (
        "edge ablations: 2/5, 00:30 elapsed, ~00:45 left")
    caplog.clear()
    with progress_bars(None, interval=0.3) as bars:  # a slow step still gets a line
        for _ in tqdm(range(1), desc="lib sections", disable=not bars):
            time.sleep(1.0)
    assert any("still working" in record.getMessage() for record in caplog.records)


def test_a_run_prints_its_stages_and_ends_with_the_table(debug_run):
    results, out = debug_run
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == f"run complete: {results / 'runs/debug/default'}"
    stages = [line.split(" ", 1)[1] for line in lines if " stage " in f" {line}"]
    assert [stage.split(":")[0] for stage in stages] == [f"stage {n}" for n in range(1, 6)]


@pytest.mark.slow
def test_ctrl_c_mid_sweep_prints_the_summary_and_one_line(tmp_path):
    env = {**os.environ, "INTERBASIS_RESULTS": str(tmp_path), "WANDB_MODE": "disabled"}
    process = subprocess.Popen([sys.executable, "-m", "interbasis.run", "-m", "debug=tiny",
                                "train.steps=100000", "seed=0,1"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meta = tmp_path / "runs/debug/seed=0,train.steps=100000/meta.json"
    deadline = time.monotonic() + 60
    while not meta.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=120)
    stderr = process.communicate()[1]
    assert code == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1] == (f"interrupted: {meta.parent} left incomplete; rerun the same command "
                         "to resume")
    assert lines[-3].startswith("sweep: 1 jobs: 0 ran") and "1 interrupted" in lines[-3]
    record = json.loads(meta.read_text())
    assert record["interrupted"] == "SIGINT" and record["exit_code"] == 130
    assert not (meta.parent / "FAILED").exists() and not (meta.parent / "summary.json").exists()
