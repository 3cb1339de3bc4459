"""``python -m interbasis.results``: aggregate writes the figure tables from complete runs only;
status lists what is unfinished."""

import pandas as pd
import pytest

from interbasis.results import RunDirectory
from interbasis.results.__main__ import main


def make_run(runs, experiment, name, method="lib", seed=0, overrides=(), curves_rows=3,
             complete=True, failed=False, layer="blocks.0.hook_resid_pre"):
    run_dir = RunDirectory(runs / experiment / name)
    run_dir.write_meta({"overrides": list(overrides), "git_commit": "abc"})
    curves = pd.DataFrame({"kind": "node", "layer": layer, "x": range(curves_rows),
                           "score": [0.5 + 0.1 * i + seed for i in range(curves_rows)],
                           "base_score": 1.0, "score_name": "accuracy", "delta": float("nan")})
    run_dir.write_curves(curves)
    run_dir.write_table("fourier", pd.DataFrame({"feature": [0, 1], "purity": [0.9, 0.4]}))
    if failed:
        run_dir.mark_failed(RuntimeError("loss is nan"))
    elif complete:
        run_dir.write_summary({"method": method, "seed": seed, "model": "modadd",
                               "ablation/edges_required@0.001/total": 10 + seed})
    return run_dir


@pytest.fixture
def store(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "modadd_paper", "method=lib,seed=0", overrides=["method=lib", "seed=0"])
    make_run(runs, "modadd_paper", "method=pca,seed=1", method="pca", seed=1, curves_rows=4,
             overrides=["method=pca", "seed=1", "threads=1", "rerun=true"])
    make_run(runs, "modadd_tau", "method.truncation_threshold=1e-09", curves_rows=2,
             overrides=["method.truncation_threshold=1e-09"], layer="a,b")  # comma in a layer
    make_run(runs, "modadd_paper", "method=lib,seed=2", seed=2, failed=True)
    make_run(runs, "modadd_paper", "method=lib,seed=3", seed=3, complete=False)  # killed
    return tmp_path


def test_aggregate_writes_tables_from_complete_runs_only(store, capsys):
    assert main(["aggregate", "--runs", str(store / "runs"), "--out", str(store / "tables")]) == 0
    assert "aggregated 3 complete runs" in capsys.readouterr().out
    runs = pd.read_csv(store / "tables" / "runs.csv")
    assert sorted(runs["run_name"]) == ["method.truncation_threshold=1e-09", "method=lib,seed=0",
                                       "method=pca,seed=1"]
    assert "modadd_paper/method=lib,seed=0" in set(runs["path"])  # relative: no machine paths
    tau = runs.set_index("experiment").loc["modadd_tau"]
    assert tau["param/method.truncation_threshold"] == 1e-9
    assert "param/threads" not in runs and "param/rerun" not in runs  # not what a run computes
    curves = pd.read_csv(store / "tables" / "curves.csv", keep_default_na=False)
    assert list(curves.columns[:5]) == ["experiment", "run_name", "model", "method", "seed"]
    assert len(curves) == 3 + 4 + 2
    pca = curves[curves["method"] == "pca"]
    assert len(pca) == 4 and set(pca["seed"]) == {1} and set(pca["run_name"]) == {
        "method=pca,seed=1"}
    assert pca["score"].astype(float).tolist() == pytest.approx([1.5, 1.6, 1.7, 1.8])
    assert set(curves[curves["experiment"] == "modadd_tau"]["layer"]) == {"a,b"}
    fourier = pd.read_csv(store / "tables" / "fourier.csv")
    assert len(fourier) == 3 * 2 and set(fourier["experiment"]) == {"modadd_paper", "modadd_tau"}


def test_a_table_with_another_header_is_aligned_by_column(store):
    odd = store / "runs" / "modadd_paper" / "method=pca,seed=1" / "fourier.csv"
    odd.write_text("purity,feature,extra\n0.7,5,x\n")
    main(["aggregate", "--runs", str(store / "runs"), "--out", str(store / "tables")])
    fourier = pd.read_csv(store / "tables" / "fourier.csv")
    assert len(fourier) == 2 + 2 + 1
    row = fourier[fourier["run_name"] == "method=pca,seed=1"].iloc[0]
    assert (row["feature"], row["purity"], row["extra"]) == (5, 0.7, "x")


def test_aggregate_one_experiment(store):
    main(["aggregate", "--runs", str(store / "runs"), "--out", str(store / "t"),
          "--experiment", "modadd_tau"])
    assert len(pd.read_csv(store / "t" / "runs.csv")) == 1
    assert set(pd.read_csv(store / "t" / "curves.csv")["experiment"]) == {"modadd_tau"}


def test_results_folder_comes_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("INTERBASIS_RESULTS", str(store))
    assert main(["aggregate"]) == 0
    assert (store / "tables" / "runs.csv").is_file()


def test_missing_runs_folder_is_one_line(tmp_path, capsys):
    assert main(["aggregate", "--runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: no runs folder at {tmp_path / 'nope'}"


def test_status_lists_failed_and_unfinished_runs(store, capsys):
    assert main(["status", "--runs", str(store / "runs")]) == 0
    out = capsys.readouterr().out
    assert "failed: " in out and "RuntimeError: loss is nan" in out
    line = next(line for line in out.splitlines() if "method=lib,seed=3" in line)
    where = store / "runs/modadd_paper/method=lib,seed=3"
    assert line == f"incomplete (killed or still running): {where}"
    table = out.splitlines()
    assert any(line.startswith("modadd_paper") and line.split()[1:] == ["2", "1", "1"]
               for line in table), out

