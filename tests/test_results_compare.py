"""``python -m interbasis.results compare``: mean [min-max] over seeds per method, rows in the
order the runs' summaries list them, only this experiment's layers."""

import pytest

from interbasis.results import RunDirectory
from interbasis.results.__main__ import main

LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "output"]


def make_summary(method, seed, edges):
    summary = {"method": method, "seed": seed, "model": "modadd"}
    for index, layer in enumerate(LAYERS):  # network order, not alphabetical
        summary[f"rank/basis/{layer}"] = 100 + index + (seed if method == "lib" else 0)
        summary[f"ablation/k_required@0.001/{layer}"] = 10
    summary["ablation/edges_required@0.001/blocks.0.hook_resid_pre->output"] = edges
    summary["ablation/edges_required@0.001/total"] = edges
    return summary


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for seed, edges in enumerate([40, 50, 62]):
        for method in ("lib", "pca"):
            run = RunDirectory(root / "modadd_paper" / f"method={method},seed={seed}")
            run.write_meta({"overrides": []})
            run.write_summary(make_summary(method, seed, edges + (20 if method == "pca" else 0)))
    other = RunDirectory(root / "fashion_mlp" / "method=lib,seed=0")
    other.write_meta({"overrides": []})
    other.write_summary({"method": "lib", "seed": 0, "model": "mlp", "rank/basis/0": 99})
    killed = RunDirectory(root / "modadd_paper" / "method=lib,seed=9")
    killed.write_meta({"overrides": []})  # no summary: left out
    return root


def test_compare_prints_seed_spread_per_method(runs, capsys):
    assert main(["compare", "modadd_paper", "--runs", str(runs), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("modadd_paper: LIB 3 seeds, PCA 3 seeds; "
                                   "mean [min-max] over seeds")
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ")
            for line in out.splitlines() if line.startswith("| ")}
    header = [cell.strip() for cell in rows["node layer"]]
    assert header[:3] == ["node layer", "rank/basis LIB", "rank/basis PCA"]
    # LIB ranks vary with the seed (100, 101, 102), PCA's do not.
    assert rows["blocks.0.hook_resid_pre"][1].strip() == "101 [100-102]"
    assert rows["blocks.0.hook_resid_pre"][2].strip() == "100"
    assert rows["output"][1].strip() == "103 [102-104]"
    assert rows["total"][3].strip() == "50.7 [40-62]" and rows["total"][4].strip() == "70.7 [60-82]"
    layer_lines = [line for line in out.splitlines() if line.startswith("| blocks") or
                   line.startswith("| output")]
    assert [line.split(" | ")[0].strip("| ") for line in layer_lines[:3]] == LAYERS
    assert "| 0 |" not in out  # the other experiment's layer is not a row here


def test_compare_unknown_experiment_says_so(runs, capsys):
    assert main(["compare", "modadd_typo", "--runs", str(runs)]) == 1
    assert "no complete runs of 'modadd_typo'" in capsys.readouterr().out
