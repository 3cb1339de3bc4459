"""python -m interbasis.metrics.edge_curve: completing an older run's edge curve restores the
points and the edge area a run made with ablation.edge_curve=true stores, and changes nothing
already stored."""

import json

import pandas as pd
import pytest

from hydra_runs import run_in_process
from interbasis.metrics import edge_curve

TOY = ("experiment=poly_toy", "experiment_name=toy", "model.n=24", "model.m=48",
       "train.steps=600", "method=pca", "logger=none")


@pytest.mark.integration  # a whole run of the pipeline (in process), then the completion
def test_completing_an_old_run_restores_the_halvings(tmp_path, monkeypatch):
    out = run_in_process(*TOY, results=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "runs" / "toy" / "method=pca,model.m=48,model.n=24,train.steps=600"
    summary = json.loads((run_dir / "summary.json").read_text())
    curves = pd.read_csv(run_dir / "curves.csv")
    areas = {k: v for k, v in summary.items() if k.startswith("ablation/edge_area/")}
    assert "ablation/edge_area/total" in areas and 0 < areas["ablation/edge_area/total"] < 1
    # make it an older run: the halvings below each bisection answer and the area keys removed
    edges = curves[curves["kind"] == "edge"]
    answer = {t: summary[f"ablation/edges_required@0.001/{t}"] for t in set(edges["layer"])}
    dropped = (curves["kind"] == "edge") & (curves["x"] > 0) & (
        curves["x"] < curves["layer"].map(answer).fillna(0) / 2)
    assert dropped.any()
    curves[~dropped].to_csv(run_dir / "curves.csv", index=False)
    old = {k: v for k, v in summary.items() if k not in areas}
    (run_dir / "summary.json").write_text(json.dumps(old, indent=2) + "\n")

    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    found = edge_curve.complete_run(run_dir)
    assert found == pytest.approx(areas, abs=1e-12)
    completed = json.loads((run_dir / "summary.json").read_text())
    assert {k: completed[k] for k in old} == old and list(completed)[-1] == "status"
    restored = pd.read_csv(run_dir / "curves.csv")
    merged = restored.merge(curves, on=["kind", "layer", "x"], suffixes=("", "_made"))
    assert len(merged) == len(curves) == len(restored)
    assert (merged["score"] - merged["score_made"]).abs().max() < 1e-9
    assert edge_curve.complete_run(run_dir) == found  # a second pass adds nothing
    assert len(pd.read_csv(run_dir / "curves.csv")) == len(restored)
