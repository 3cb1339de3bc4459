"""The results store: atomic writes, summary-last commit marker, failures, names and loading."""

import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve, NodeLayer
from interbasis.results import (
    RunDirectory,
    collect_meta,
    curves_frame,
    load_curves,
    load_runs,
    run_name_from_overrides,
    validate_summary,
)
from interbasis.results.meta import git_state
from interbasis.results.store import BASE_COLUMNS, CURVE_COLUMNS


def node_curves() -> list[NodeAblationCurve]:
    return [
        NodeAblationCurve(layer="0", ks=[1, 2, 3], scores=[0.2, 0.7, 1.0], base_score=1.0),
        NodeAblationCurve(layer="output", ks=[1, 2], scores=[0.5, 1.0], base_score=1.0),
    ]


def edge_results() -> list[EdgeAblationResult]:
    return [EdgeAblationResult(transition="0->output", n_required=3, n_possible=8, eps=0.1,
                               base_score=1.0, score_at_required=0.999, delta=0.001,
                               evaluations={8: 1.0, 2: 0.4, 3: 0.999})]


def tiny_graph() -> Graph:
    eye = torch.eye(3, dtype=torch.float64)
    layer = NodeLayer(name="0", C=eye, C_pinv=eye, eigenvalues=torch.ones(3, dtype=torch.float64),
                      mean=torch.zeros(3, dtype=torch.float64),
                      gram_eigenvalues=torch.ones(3, dtype=torch.float64))
    return Graph(layers=[layer], edges=None, method="lib")


def complete_run(root, experiment: str, name: str, summary: dict) -> RunDirectory:
    run_dir = RunDirectory.for_run(root, experiment, name)
    run_dir.write_config({"seed": 0, "method": "lib"})
    run_dir.write_meta({"git_commit": "abc", "start_time": "t0", "wandb_run_id": "w1"})
    run_dir.update_meta(end_time="t1")
    run_dir.write_summary(summary)
    return run_dir


def no_temp_files(path) -> bool:
    return not [name for name in os.listdir(path) if name.endswith(".tmp")]


# -- writing -----------------------------------------------------------------------------------


def test_full_run_writes_every_file_atomically(tmp_path):
    run_dir = RunDirectory.for_run(tmp_path, "modadd", "method=lib,seed=0")
    assert run_dir.path == tmp_path / "runs" / "modadd" / "method=lib,seed=0"
    assert run_dir.status == "missing"
    run_dir.write_config({"seed": 0, "model": {"d": (1, 2)}})
    run_dir.write_meta({"git_commit": "abc", "start_time": "t0"})
    run_dir.update_meta(end_time="t1", wandb_run_id="w1")
    run_dir.write_curves(curves_frame(node_curves(), edge_results()))
    graph_path = run_dir.write_graph(tiny_graph())
    assert run_dir.write_graph(tiny_graph(), "graph_pca.pt").name == "graph_pca.pt"  # no double
    (run_dir.path / "graph_pca.pt").unlink()
    run_dir.write_json("extra", {"values": [1, 2]})
    assert run_dir.status == "incomplete" and not run_dir.is_complete
    run_dir.write_summary({"rank/basis/0": 3, "modularity/q": math.nan, "ok": True})

    names = set(os.listdir(run_dir.path))
    assert names == {"config.yaml", "meta.json", "curves.csv", "graph_lib.pt", "extra.json",
                     "summary.json"}
    assert graph_path.name == "graph_lib.pt"
    assert run_dir.is_complete and run_dir.status == "complete"
    assert run_dir.read_meta() == {"git_commit": "abc", "start_time": "t0", "end_time": "t1",
                                   "wandb_run_id": "w1"}
    summary = run_dir.read_summary()
    assert summary["status"] == "complete" and summary["rank/basis/0"] == 3
    assert math.isnan(summary["modularity/q"])
    assert "d:\n  - 1\n  - 2" in (run_dir.path / "config.yaml").read_text()
    assert run_dir.read_json("extra") == {"values": [1, 2]}


def test_summary_is_written_last(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.write_config({"a": 1})
    run_dir.write_summary({"x": 1.0})
    # Results after the summary (or over a stale one) are refused; metadata may still change.
    for write in (lambda: run_dir.write_config({"a": 2}),
                  lambda: run_dir.write_curves(curves_frame(node_curves(), [])),
                  lambda: run_dir.write_graph(tiny_graph()),
                  lambda: run_dir.write_json("extra", {})):
        with pytest.raises(RuntimeError, match="already holds a summary"):
            write()
    run_dir.update_meta(synced=True)
    assert run_dir.is_complete and run_dir.read_meta() == {"synced": True}
    run_dir.clear()
    run_dir.write_config({"a": 2})  # a rerun after clear() may write again


def test_interrupted_write_leaves_no_temp_file_and_no_summary(tmp_path, monkeypatch):
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.write_config({"a": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        run_dir.write_summary({"x": 1.0})
    assert not (run_dir.path / "summary.json").exists()
    assert no_temp_files(run_dir.path)


def test_crash_between_writes_leaves_failed_not_summary(tmp_path):
    run_dir = complete_run(tmp_path, "exp", "seed=0", {"x": 1})  # a stale, older success
    run_dir.clear()
    assert run_dir.status == "incomplete"
    try:
        run_dir.write_config({"a": 1})
        run_dir.write_meta({"start_time": "t0"})
        raise ZeroDivisionError("pipeline broke")
    except ZeroDivisionError as exc:
        run_dir.mark_failed(exc)
    assert not (run_dir.path / "summary.json").exists()
    failed = (run_dir.path / "FAILED").read_text()
    assert "type: builtins.ZeroDivisionError" in failed
    assert "message: pipeline broke" in failed
    assert "Traceback (most recent call last)" in failed and "test_results_store.py" in failed
    assert run_dir.status == "failed" and no_temp_files(run_dir.path)


def test_mark_failed_removes_stale_summary_and_rerun_clears_failed(tmp_path):
    run_dir = complete_run(tmp_path, "exp", "seed=0", {"x": 1})
    run_dir.mark_failed(RuntimeError("late failure"))
    assert not (run_dir.path / "summary.json").exists() and run_dir.status == "failed"
    run_dir.write_summary({"x": 2})  # the rerun succeeds
    assert not (run_dir.path / "FAILED").exists() and run_dir.read_summary()["x"] == 2


def test_clear_keeps_subfolders(tmp_path):
    run_dir = complete_run(tmp_path, "exp", "seed=0", {"x": 1})
    (run_dir.path / "wandb").mkdir()
    (run_dir.path / ".summary.json.abc.tmp").write_text("half")
    run_dir.clear()
    assert os.listdir(run_dir.path) == ["wandb"]


def test_is_complete_needs_parseable_summary_with_status(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.path.mkdir()
    (run_dir.path / "summary.json").write_text('{"x": 1')
    assert not run_dir.is_complete
    (run_dir.path / "summary.json").write_text('{"x": 1}')
    assert not run_dir.is_complete


@pytest.mark.parametrize("bad", [{"x": [1]}, {"x": None}, {"x": {"y": 1}}, {1: 2},
                                 {"status": "failed"}])
def test_summary_validation(tmp_path, bad):
    with pytest.raises(ValueError):
        RunDirectory(tmp_path / "run").write_summary(bad)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_summary_validation_converts_numpy_scalars():
    import numpy as np

    clean = validate_summary({"a": np.int64(3), "b": np.float32(0.5), "c": np.bool_(True),
                              "d": math.inf})
    assert clean == {"a": 3, "b": 0.5, "c": True, "d": math.inf}
    assert [type(value) for value in clean.values()] == [int, float, bool, float]


@pytest.mark.parametrize("name", ["", "..", "a/b"])
def test_bad_file_names_are_rejected(tmp_path, name):
    with pytest.raises(ValueError):
        RunDirectory.for_run(tmp_path, "exp", name)


def test_write_json_refuses_summary_and_meta(tmp_path):
    with pytest.raises(ValueError):
        RunDirectory(tmp_path).write_json("summary", {"x": 1})
    with pytest.raises(ValueError):
        RunDirectory(tmp_path).write_json("meta.json", {})


def test_write_table_round_trips_and_is_refused_after_the_summary(tmp_path):
    run = RunDirectory(tmp_path / "run")
    table = pd.DataFrame({"feature": [1, 2], "purity": [0.5, 0.97], "term": ["cos 4a", "sin b"]})
    run.write_table("fourier", table)
    pd.testing.assert_frame_equal(run.read_table("fourier"), table)
    with pytest.raises(ValueError, match="write_curves"):
        run.write_table("curves", table)
    run.write_summary({"a": 1})
    with pytest.raises(RuntimeError, match="already holds a summary"):
        run.write_table("other", table)
    run.clear()
    assert not (run.path / "fourier.csv").exists()


def test_write_config_accepts_omegaconf(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"a": 1, "b": "${a}"})
    path = RunDirectory(tmp_path).write_config(cfg)
    assert path.read_text() == "a: 1\nb: 1\n"


# -- run names ---------------------------------------------------------------------------------


def test_run_name_is_sorted_and_deterministic():
    assert run_name_from_overrides(["method=lib", "seed=3"]) == "method=lib,seed=3"
    assert run_name_from_overrides(["seed=3", "method=lib"]) == "method=lib,seed=3"
    assert run_name_from_overrides(["+seed=3", "++method=lib"]) == "method=lib,seed=3"
    assert run_name_from_overrides([]) == "default"


def test_run_name_ignores_reporting_overrides():
    overrides = ["logger=wandb", "paths.root=/data", "hydra.job.chdir=true", "progress=false",
                 "threads=4", "seed=1"]
    assert run_name_from_overrides(overrides) == "seed=1"
    assert run_name_from_overrides(["logger=none"]) == "default"
    assert run_name_from_overrides(overrides, ignore=["hydra.*"]) == (
        "logger=wandb,paths.root=_data,progress=false,seed=1,threads=4")


def test_run_name_replaces_unsafe_characters():
    name = run_name_from_overrides(["experiment=paper/modadd", "model.widths=[8, 16]",
                                    "note='a b'"])
    assert name == "experiment=paper_modadd,model.widths=_8,_16_,note=_a_b_"
    assert "/" not in run_name_from_overrides(["x=../../etc"])


def test_long_run_names_are_cut_with_a_hash():
    long_a = run_name_from_overrides([f"x={'a' * 300}", "seed=0"])
    long_b = run_name_from_overrides([f"x={'a' * 300}", "seed=1"])
    assert len(long_a) <= 150 and len(long_b) <= 150 and long_a != long_b
    assert long_a == run_name_from_overrides(["seed=0", f"x={'a' * 300}"])


# -- curves ------------------------------------------------------------------------------------


def test_curves_frame_long_format_and_round_trip(tmp_path):
    frame = curves_frame(node_curves(), edge_results())
    assert list(frame.columns) == CURVE_COLUMNS
    assert list(frame.columns[:6]) == ["kind", "layer", "x", "score", "base_score", "score_name"]
    assert len(frame) == 3 + 2 + 3
    edges = frame[frame.kind == "edge"]
    assert edges.x.tolist() == [2, 3, 8] and set(edges.layer) == {"0->output"}
    assert set(edges.score_name) == {"accuracy"} and (edges.delta == 0.001).all()
    assert frame[frame.kind == "node"].delta.isna().all()

    run_dir = RunDirectory(tmp_path / "run")
    run_dir.write_curves(frame)
    loaded = load_curves(run_dir.path)
    assert loaded.layer.tolist() == frame.layer.tolist()  # "0" stays a string
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    assert loaded.x.dtype == "int64"


def test_curves_frame_empty():
    frame = curves_frame([], [])
    assert list(frame.columns) == CURVE_COLUMNS and frame.empty


def test_load_curves_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_curves(tmp_path)


# -- loading -----------------------------------------------------------------------------------


def test_load_runs_lists_complete_runs_only(tmp_path):
    complete_run(tmp_path, "modadd", "seed=0", {"rank/basis/0": 3, "acc": 1.0})
    complete_run(tmp_path, "modadd", "seed=1", {"rank/basis/0": 4})
    complete_run(tmp_path, "mlp", "seed=0", {"rank/basis/0": 5, "only_here": "x",
                                             "experiment": "renamed", "path": "elsewhere"})
    RunDirectory.for_run(tmp_path, "modadd", "seed=2").mark_failed(ValueError("bad\nthing"))
    killed = RunDirectory.for_run(tmp_path, "modadd", "seed=3")
    killed.write_config({"a": 1})

    runs = load_runs(tmp_path / "runs")
    assert len(runs) == 3
    assert list(runs.columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    assert runs[["experiment", "run_name"]].values.tolist() == [
        ["mlp", "seed=0"], ["modadd", "seed=0"], ["modadd", "seed=1"]]
    assert runs["rank/basis/0"].tolist() == [5, 3, 4]
    assert (runs.status == "complete").all() and (runs.git_commit == "abc").all()
    assert (runs.end_time == "t1").all() and (runs.wandb_run_id == "w1").all()
    assert runs.only_here.isna().tolist() == [False, True, True]
    assert runs.path.iloc[0] == str(tmp_path / "runs" / "mlp" / "seed=0")  # not the summary's

    everything = load_runs(tmp_path / "runs", include_failed=True)
    assert len(everything) == 5
    by_name = everything.set_index("run_name").loc[["seed=2", "seed=3"]]
    assert by_name.status.tolist() == ["failed", "incomplete"]
    assert by_name.error.iloc[0] == "builtins.ValueError: bad"


def test_load_runs_has_the_resolved_config_as_columns(tmp_path):
    for m, seed in ((256, 0), (256, 1), (1024, 0)):
        run = complete_run(tmp_path, "toy", f"m={m},seed={seed}", {"toy/polysemantic": m // 256})
        run.path.joinpath("config.yaml").unlink()  # complete_run wrote a placeholder config
        (run.path / "config.yaml").write_text(
            f"seed: {seed}\nmodel:\n  m: {m}\n  node_layers: ['0', output]\n")
    runs = load_runs(tmp_path / "runs")
    assert runs["config/model.m"].tolist() == [1024, 256, 256]
    assert runs["config/model.node_layers"].iloc[0] == "['0', 'output']"
    assert runs.groupby("config/model.m")["toy/polysemantic"].mean().to_dict() == {256: 1, 1024: 4}
    assert "config/seed" in runs and "config/model.m" not in load_runs(tmp_path / "runs",
                                                                        config=False)


def test_load_runs_empty_folder(tmp_path):
    for path in (tmp_path, tmp_path / "missing"):
        runs = load_runs(path)
        assert runs.empty and list(runs.columns) == BASE_COLUMNS


def test_load_runs_many_runs_is_fast(tmp_path):
    import time

    summary = {f"rank/basis/{layer}": layer for layer in range(20)}
    for index in range(300):
        run = tmp_path / "exp" / f"seed={index}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({**summary, "status": "complete"}))
    start = time.perf_counter()
    runs = load_runs(tmp_path)
    assert len(runs) == 300 and time.perf_counter() - start < 2.0


# -- meta --------------------------------------------------------------------------------------


def test_collect_meta_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside any checkout: must not matter or crash
    meta = collect_meta()
    assert {"git_commit", "git_dirty", "versions", "device", "hostname", "start_time",
            "argv"} <= set(meta)
    assert set(meta["versions"]) == {"python", "torch", "numpy", "hydra", "omegaconf", "wandb",
                                     "pandas", "interbasis"}
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["device"] == "cpu" or not meta["device"].startswith("cpu")
    assert meta["start_time"].endswith("+00:00")
    json.dumps(meta)  # everything in it is JSON-serialisable


def test_git_state_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == (None, None)
    assert git_state(tmp_path / "does-not-exist") == (None, None)


def test_git_state_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable on the path
    assert git_state(tmp_path) == (None, None)


@pytest.mark.integration
def test_git_state_in_a_checkout(tmp_path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)

    git("init", "-q")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    assert git_state(package) == (None, None)  # not tracked: not this repo's package
    git("add", ".")
    git("commit", "-q", "-m", "x")
    commit, dirty = git_state(package)
    assert len(commit) == 40 and dirty is False
    (package / "new.py").write_text("")
    assert git_state(package)[1] is True


@pytest.mark.integration
def test_importing_results_does_not_import_wandb():
    code = "import sys, interbasis.results; print('wandb' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
