"""Sweeps end to end: complete runs are skipped, failures are recorded and summed up, W&B runs are
resumed, and a sweep killed with SIGKILL redoes exactly its missing runs when started again
(multiruns through the command, where the launcher is the point; a single run in process)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hydra_runs import run_in_process

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline

ENV = {"WANDB_MODE": "disabled", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
TINY = ["debug=tiny", "train.steps=30"]


def run_cli(*args: str, results: Path, env=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV, "INTERBASIS_RESULTS": str(results), **(env or {})}
    return subprocess.run([sys.executable, "-m", "interbasis.run", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


def lines_starting(text: str, prefix: str) -> set[str]:
    return {line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)}


def test_complete_run_is_skipped_unless_rerun(tmp_path):
    # in process: the skip and the rerun are the runner's, not the command's
    first = run_in_process(*TINY, "seed=1", results=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = tmp_path / "runs" / "debug" / "seed=1,train.steps=30"
    summary = (run_dir / "summary.json").read_bytes()
    again = run_in_process(*TINY, "seed=1", results=tmp_path)
    assert again.returncode == 0
    assert again.stdout.strip().splitlines()[-1] == (
        f"skipped, already complete (rerun=true redoes it): {run_dir}")
    assert (run_dir / "summary.json").read_bytes() == summary and meta(run_dir)["attempt"] == 1
    forced = run_in_process(*TINY, "seed=1", "rerun=true", results=tmp_path)  # same dir, redone
    assert forced.returncode == 0 and f"run complete: {run_dir}" in forced.stdout
    assert meta(run_dir)["attempt"] == 2
    assert meta(run_dir)["overrides"] == ["debug=tiny", "train.steps=30", "seed=1", "rerun=true"]


def test_multirun_records_a_failure_goes_on_and_exits_nonzero(tmp_path):
    # lr 1e30 diverges at once and seed -1 is a config error; the sweep must still run the good
    # job and then report all three failures.
    args = ["-m", *TINY, "train.lr=1e30,1e-3", "seed=0,-1"]
    out = run_cli(*args, results=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    runs = tmp_path / "runs" / "debug"
    failed = runs / "seed=0,train.lr=1e+30,train.steps=30"
    good = runs / "seed=0,train.lr=0.001,train.steps=30"
    # config errors leave no run directory (hidden files beside them are the runs' locks)
    assert sorted(p for p in runs.iterdir() if not p.name.startswith(".")) == [good, failed]
    assert "Traceback" in (failed / "FAILED").read_text()
    assert not (failed / "summary.json").exists() and (good / "summary.json").is_file()
    assert "sweep: 4 jobs: 1 ran, 0 skipped (already complete), 3 failed" in out.stderr
    assert (f"failed: debug=tiny train.steps=30 train.lr=1e+30 seed=0 [{failed}]: "
            "TrainingDiverged") in out.stderr
    assert ("failed: debug=tiny train.steps=30 train.lr=0.001 seed=-1: config error: seed = -1: "
            "Input should be greater than or equal to 0") in out.stderr.splitlines()
    again = run_cli(*args, results=tmp_path)  # the complete one is skipped, the failed one redone
    assert again.returncode == 1
    assert "sweep: 4 jobs: 0 ran, 1 skipped (already complete), 3 failed" in again.stderr
    assert meta(failed)["attempt"] == 2 and meta(good)["attempt"] == 1


def test_fail_fast_stops_the_sweep_with_the_traceback(tmp_path):
    out = run_cli("-m", *TINY, "train.lr=1e30,1e-3", "fail_fast=true", results=tmp_path)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr
    assert "1 failed, 1 cancelled (fail_fast)" in out.stderr
    assert [path.name for path in (tmp_path / "runs" / "debug").iterdir()
            if not path.name.startswith(".")] == ["train.lr=1e+30,train.steps=30"]


@pytest.mark.slow  # two W&B offline service start-ups: ~15 s on 2 shared cores
def test_an_unfinished_run_continues_its_wandb_run(tmp_path):
    args = [*TINY, "train.lr=1e30", "logger=offline"]
    first = run_cli(*args, results=tmp_path, env={"WANDB_MODE": "offline"})
    assert first.returncode == 1
    run_dir = tmp_path / "runs" / "debug" / "train.lr=1e30,train.steps=30"  # as typed
    run_id = meta(run_dir)["wandb_run_id"]
    assert run_id
    second = run_cli(*args, results=tmp_path, env={"WANDB_MODE": "offline"})
    assert second.returncode == 1
    assert meta(run_dir)["wandb_run_id"] == run_id and meta(run_dir)["attempt"] == 2
    offline_runs = sorted((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline_runs)


def run_states(runs: Path) -> tuple[set[str], set[str]]:
    """(complete, started but not complete) run names; asserts no summary is half-valid."""
    complete, unfinished = set(), set()
    for run_dir in runs.glob("*/*"):
        if run_dir.name.startswith(".") or not run_dir.is_dir():  # locks beside the runs
            continue
        summary = run_dir / "summary.json"
        if summary.exists():
            assert json.loads(summary.read_text())["status"] == "complete", run_dir
            complete.add(run_dir.name)
        else:
            unfinished.add(run_dir.name)
    return complete, unfinished


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_killed_sweep_redoes_exactly_the_missing_runs(tmp_path, launcher):
    command = [sys.executable, "-m", "interbasis.run", "-m", "sweep=tiny",
               f"hydra/launcher={launcher}"]
    env = {**os.environ, **ENV, "INTERBASIS_RESULTS": str(tmp_path)}
    runs = tmp_path / "runs"
    with open(tmp_path / "first.log", "w") as log:
        # Own session = own process group: the kill reaches the joblib workers and nothing else.
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = time.monotonic() + 240
        try:
            while True:
                complete, unfinished = run_states(runs)
                if len(complete) >= 2 and unfinished:
                    break  # killed mid-way: some runs done, one in progress
                assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the sweep made no progress"
                time.sleep(0.02)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    done_before, _ = run_states(runs)
    assert 2 <= len(done_before) < 6
    saved = {name: (runs / "debug" / name / "summary.json").read_bytes() for name in done_before}

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    complete, unfinished = run_states(runs)
    assert len(complete) == 6 and not unfinished
    skipped = lines_starting(second.stdout, "skipped, already complete (rerun=true redoes it): ")
    ran = lines_starting(second.stdout, "run complete: ")
    assert {Path(path).name for path in skipped} == done_before
    assert {Path(path).name for path in ran} == complete - done_before
    for name, summary in saved.items():  # skipped runs were not touched
        assert (runs / "debug" / name / "summary.json").read_bytes() == summary
    assert f"sweep: 6 jobs: {6 - len(done_before)} ran, {len(done_before)} skipped" in (
        second.stdout)


@pytest.mark.slow
def test_submitit_launcher_runs_jobs_in_other_processes(tmp_path):
    # submitit_local is the SLURM preset's launcher code without a cluster: the task is pickled
    # and run in fresh processes; the records and the summary must still come together.
    args = ["-m", *TINY, "train.lr=1e-3,1e30", "hydra/launcher=submitit_local"]
    out = run_cli(*args, results=tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "sweep: 2 jobs: 1 ran, 0 skipped (already complete), 1 failed" in out.stderr
    assert (tmp_path / "runs/debug/train.lr=0.001,train.steps=30/summary.json").is_file()
    assert (tmp_path / "runs/debug/train.lr=1e+30,train.steps=30/FAILED").is_file()


@pytest.mark.slow
def test_a_skipped_run_reports_its_summary_to_a_wandb_agent(tmp_path):
    assert run_cli(*TINY, results=tmp_path).returncode == 0
    # What `wandb agent` sets for the process it starts (offline here: no server).
    agent = {"WANDB_MODE": "offline", "WANDB_SWEEP_ID": "sweep1", "WANDB_RUN_ID": "agentrun1"}
    out = run_cli(*TINY, "logger=offline", results=tmp_path, env=agent)
    assert out.returncode == 0 and "skipped, already complete" in out.stdout
    (record,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*-agentrun1/run-agentrun1.wandb")
    assert b"ablation/edges_required@0.001/total" in record.read_bytes()  # the stored summary
