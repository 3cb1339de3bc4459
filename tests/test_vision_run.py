"""Vision presets through ``python -m interbasis.run``, on small files in the official formats."""

import json

import pandas as pd
import pytest

from hydra_runs import lib_and_pca_runs, run_cli, run_in_process, run_lib_and_pca
from vision_files import write_cifar_files, write_fashion_files

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline


@pytest.fixture(scope="module")
def fashion_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    root = write_fashion_files(tmp_path_factory.mktemp("fashion"))
    outs = run_lib_and_pca("family=vision", "debug=tiny", "data.basis_samples=300", results=results,
                           extra_env={"INTERBASIS_FASHION_MNIST": str(root)})
    # debug=tiny of the vision family trains one epoch: 10 steps on these 600 images
    return results, outs


def test_fashion_runs_write_metrics_and_class_tables(fashion_runs):
    results, _ = fashion_runs
    runs = lib_and_pca_runs(*fashion_runs)
    assert set(runs["model"]) == {"vision"}
    row = runs[runs["method"] == "lib"].iloc[0]
    assert row["rank/gram/0"] <= 785 and row["train/test_acc"] > 0.3  # chance is 0.1
    for key in ("ablation/k_required@0.001/2", "ablation/edges_required@0.001/total",
                "sparsity/edges_99/0->2", "class_separation/best_eta2_groups/2"):
        assert key in runs.columns and row[key] >= 0
    run_dir = results / "runs" / "debug" / "data.basis_samples=300,family=vision,method=lib"
    means = pd.read_csv(run_dir / "class_means.csv")
    assert set(means["layer"].astype(str)) == {"2", "4"} and means["class"].nunique() == 10
    assert set(means["group"]) == {"clothing", "footwear", "bag"}
    edge_weight = pd.read_csv(run_dir / "edge_weight.csv")
    assert set(edge_weight["transition"]) == {"0->2", "2->4", "4->output"}
    separation = pd.read_csv(run_dir / "class_separation.csv")
    best = json.loads((run_dir / "summary.json").read_text())["class_separation/best_eta2_groups/2"]
    assert best == pytest.approx(separation.query("layer == 2")["eta2_groups"].max())


def test_lib_and_pca_share_one_cached_model(fashion_runs):
    results, _ = fashion_runs
    assert len(list((results / "cache" / "checkpoints" / "vision").glob("*.pt"))) == 1
    steps = [json.loads((results / "runs/debug" / f"data.basis_samples=300,family=vision,method={m}"
                         / "summary.json").read_text())["train/steps_trained_now"]
             for m in ("lib", "pca")]
    assert steps[0] > 0 and steps[1] == 0


def test_cifar_preset_runs_on_official_format_batches(tmp_path):
    root = write_cifar_files(tmp_path / "cifar", per_batch=60, n_test=100)
    out = run_in_process("experiment=cifar_paper", f"data.root={root}", "data.download=false",
                  "model.hidden=[8,8]", "train.epochs=1", "data.basis_samples=200",
                  "logger=none", "threads=1", results=tmp_path / "results")
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (p for p in (tmp_path / "results/runs/cifar_paper").iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rank/gram/0"] <= 3073 and summary["train/step"] == 5  # 300 images, batch 64
    assert "class_separation/best_eta2_groups/2" in summary
    for layer in ("2", "4"):  # both hidden ReLU layers report degeneracy source 3
        assert 0 < summary[f"degeneracy/relu_sync/{layer}"] <= 1


@pytest.mark.parametrize(("experiment", "hint"), [("fashion_mlp", "apt-get install"),
                                                  ("cifar_paper", "cifar-10-batches-py")])
def test_missing_data_is_one_line(tmp_path, experiment, hint):
    out = run_cli(f"experiment={experiment}", f"data.root={tmp_path / 'nothing'}",
                  "data.download=false", "logger=none", results=tmp_path / "results")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and hint in lines[0] and "Traceback" not in out.stderr
