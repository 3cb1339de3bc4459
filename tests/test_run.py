"""The Hydra entry point end to end: a debug=tiny run, its records, and one-line failures."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from interbasis.results import load_curves, load_runs


def run_cli(*overrides: str, results, extra_env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERBASIS_RESULTS": str(results), "WANDB_MODE": "disabled",
           "WANDB_SILENT": "true", **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "interbasis.run", *overrides], env=env,
                          capture_output=True, text=True, timeout=300)


def run_lib_and_pca(*overrides: str, results, extra_env=None) -> list:
    """The same run for ``method=lib`` and ``method=pca`` (the method is the last override)."""
    return [run_cli(*overrides, f"method={method}", results=results, extra_env=extra_env)
            for method in ("lib", "pca")]


def lib_and_pca_runs(results, outs) -> pd.DataFrame:
    """``load_runs`` of the two runs of :func:`run_lib_and_pca`, after checking both completed."""
    for out in outs:
        assert out.returncode == 0, out.stderr[-2000:]
        assert "run complete:" in out.stdout
    runs = load_runs(results / "runs")
    assert sorted(runs["method"]) == ["lib", "pca"]
    return runs


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
    out = run_cli("debug=tiny", "method=neuron", results=results)
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
