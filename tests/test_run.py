"""The Hydra entry point end to end: a debug=tiny run and its records (composed and run in this
process), and the command's contract (one-line failures and exit codes, ``--cfg``, the console
script), which needs the process."""

import json
import os
import subprocess
import sys

import pytest

from hydra_runs import lib_and_pca_runs, run_cli, run_in_process, run_lib_and_pca
from interbasis.results import load_curves

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return results, run_lib_and_pca("debug=tiny", results=results)


def test_debug_tiny_runs_write_complete_records(tiny_runs):
    results, _ = tiny_runs
    runs = lib_and_pca_runs(*tiny_runs)
    assert set(runs["run_name"]) == {"method=lib", "method=pca"}
    row = runs[runs["method"] == "lib"].iloc[0]
    for key in ("rank/basis/blocks.0.hook_resid_pre",
                "ablation/k_required@0.001/blocks.0.hook_resid_mid",
                "ablation/edges_required@0.001/total",
                "sparsity/edges_99/blocks.0.hook_resid_post->output"):
        assert key in runs.columns and row[key] >= 0
    # degeneracy source 3: distinct MLP firing patterns per neuron, a share in (0, 1]
    assert 0 < row["degeneracy/relu_sync/blocks.0.mlp.hook_post"] <= 1
    assert "rank/jacobian/blocks.0.hook_resid_pre" in runs.columns
    run_dir = results / "runs" / "debug" / "method=lib"
    for name in ("config.yaml", "meta.json", "summary.json", "curves.csv", "graph_lib.pt"):
        assert (run_dir / name).is_file(), name
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["exit_code"] == 0 and "versions" in meta
    curves = load_curves(run_dir)
    assert set(curves["kind"]) == {"node", "edge"}


def test_a_cached_checkpoint_is_reused(tiny_runs):
    results, _ = tiny_runs
    checkpoints = list((results / "cache" / "checkpoints").rglob("*.pt"))
    assert len(checkpoints) == 1  # lib and pca share the trained model
    out = run_in_process("debug=tiny", "method=neuron", results=results)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list((results / "cache" / "checkpoints").rglob("*.pt")) == checkpoints
    summary = json.loads((results / "runs/debug/method=neuron/summary.json").read_text())
    assert summary["train/steps_trained_now"] == 0


def test_bad_override_is_one_line_and_leaves_no_run(tmp_path):
    out = run_cli("debug=tiny", "seed=-3", results=tmp_path)
    assert out.returncode == 2
    expected = "config error: seed = -3: Input should be greater than or equal to 0"
    assert out.stderr.strip() == expected
    assert not (tmp_path / "runs").exists()


def test_unknown_group_option_names_the_choices(tmp_path):
    out = run_cli("method=ica", results=tmp_path)
    assert out.returncode == 2
    from interbasis.run import CONFIG_DIR

    methods = ", ".join(sorted(path.stem for path in (CONFIG_DIR / "method").glob("*.yaml")))
    assert "lib, neuron, ngf, pca, random" in methods  # the methods this release ships
    expected = f"config error: method=ica: no such method; choose one of: {methods}"
    assert out.stderr.strip() == expected


def test_failing_run_leaves_failed_marker_and_no_summary(tmp_path):
    # lr so large the loss blows up: the run must stop with one line and no summary.json
    out = run_cli("debug=tiny", "train.lr=1e30", "train.steps=30", results=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("run failed: ")
    assert len(out.stderr.strip().splitlines()) == 1
    run_dir = next(p for p in (tmp_path / "runs" / "debug").iterdir() if p.is_dir())
    assert (run_dir / "FAILED").is_file() and not (run_dir / "summary.json").exists()


def test_print_composed_config():
    out = subprocess.run([sys.executable, "-m", "interbasis.run", "--cfg", "job",
                          "experiment=modadd_paper"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "experiment_name: modadd_paper" in out.stdout


def test_console_script_does_not_depend_on_the_working_directory(tmp_path):
    from pathlib import Path

    from interbasis.run import PROJECT_ROOT

    script = Path(sys.executable).parent / "interbasis-run"
    assert script.is_file(), "the package's console script is not installed beside python"
    env = {key: value for key, value in os.environ.items() if key != "INTERBASIS_RESULTS"}
    out = subprocess.run([str(script), "--cfg", "job", "--resolve"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"results: {PROJECT_ROOT}/results\n" in out.stdout
    assert not any(tmp_path.iterdir())  # nothing written where it was started


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory):
    """Files the data of the vision and tiny_gpt families need (the real ones are not assumed)."""
    from vision_files import write_fashion_files

    root = tmp_path_factory.mktemp("inputs")
    text = root / "corpus.txt"
    text.write_text("In the beginning was the word, and the word was with the text. " * 40)
    return {"extra_env": {"INTERBASIS_FASHION_MNIST": str(write_fashion_files(root / "fashion"))},
            "overrides": [f"data.path={text}"]}


@pytest.mark.parametrize("experiment", ["modadd_degeneracy", "poly_toy", "fashion_cnn",
                                        "tiny_gpt"])
def test_experiments_under_debug_tiny_run_in_seconds(experiment, small_inputs, tmp_path):
    """The runnable corner of the compose matrix (test_config.py composes all of it): a preset
    shrunk by debug=tiny runs end to end, in its own family, into results/runs/debug/."""
    extra = small_inputs["overrides"] if experiment == "tiny_gpt" else []
    out = run_in_process(f"experiment={experiment}", "debug=tiny", *extra, results=tmp_path,
                         extra_env=small_inputs["extra_env"])
    assert out.returncode == 0, out.stderr
    assert out.run_dir.parent == tmp_path / "runs" / "debug"
    assert f"experiment={experiment}" in out.run_dir.name
    assert (out.run_dir / "summary.json").is_file() and out.summary["model"] in (
        "modadd", "poly_toy", "vision", "tiny_gpt")
