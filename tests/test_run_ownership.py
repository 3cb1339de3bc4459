"""No result is ever lost: run-directory locks, atomic reruns and the model-cache lock, with real
processes (the runs are ``debug=tiny``: a few seconds each)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hydra_runs import run_cli
from interbasis.locking import LockBusy, OwnedLock
from interbasis.results import RunDirectory

pytestmark = pytest.mark.integration  # composes configs or runs the pipeline

# Holds the lock on argv[1] until the file argv[2] exists (then one more second), at most 120 s.
HOLD = ("import sys, time, pathlib; from interbasis.locking import OwnedLock; "
        "lock = OwnedLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
        "end = time.monotonic() + 120\n"
        "while time.monotonic() < end and not pathlib.Path(sys.argv[2]).exists(): "
        "time.sleep(0.05)\n"
        "time.sleep(1)")


def env_for(results: Path) -> dict:
    return {**os.environ, "INTERBASIS_RESULTS": str(results), "WANDB_MODE": "disabled",
            "WANDB_SILENT": "true"}


def start_run(*overrides: str, results: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "interbasis.run", *overrides],
                            env=env_for(results), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def hold_lock(path: Path, until: Path | None = None) -> subprocess.Popen:
    """Another process that holds the lock on ``path`` until ``until`` exists (or 2 minutes)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(until or "/-")],
                              stdout=subprocess.PIPE, text=True, env=os.environ)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A results store with one complete debug=tiny run (and its cached model)."""
    results = tmp_path_factory.mktemp("results")
    out = run_cli("debug=tiny", results=results)
    assert out.returncode == 0, out.stderr[-2000:]
    return results, RunDirectory(results / "runs/debug/default")


def test_the_lock_names_its_holder_and_a_dead_holder_is_taken_over(tmp_path, caplog):
    target = tmp_path / "run"
    holder = hold_lock(target)
    try:
        with pytest.raises(LockBusy, match=rf"held by pid {holder.pid} on .* since 20"):
            OwnedLock(target).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up, the sidecar stays behind
        holder.wait()
    assert json.loads((tmp_path / ".run.lock.json").read_text())["pid"] == holder.pid
    lock = OwnedLock(target)
    lock.acquire()
    assert f"from pid {holder.pid}" in caplog.text and "which is gone" in caplog.text
    assert json.loads((tmp_path / ".run.lock.json").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / ".run.lock.json").exists()


def test_a_run_whose_directory_is_held_stops_at_once_and_writes_nothing(tmp_path):
    run_path = tmp_path / "runs/debug/default"
    holder = hold_lock(run_path)
    try:
        out = run_cli("debug=tiny", results=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{run_path} is busy: run directory held by pid {holder.pid} on ")
    assert not run_path.exists()


@pytest.mark.slow
def test_two_processes_on_one_run_one_does_the_work_and_no_summary_is_lost(tmp_path):
    first = start_run("debug=tiny", results=tmp_path)
    second = start_run("debug=tiny", results=tmp_path)
    outs = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    done = [out for out in outs if "run complete:" in out[1]]
    assert len(done) == 1, outs
    other = next(out for out in outs if out is not done[0])
    # the other either found it held (busy, exit 1) or found it finished (skipped, exit 0)
    assert ("is busy: run directory held by pid" in other[2] and other[0] == 1) or (
        "skipped, already complete" in other[1] and other[0] == 0), other
    run = RunDirectory(tmp_path / "runs/debug/default")
    assert run.is_complete and not (run.path / "FAILED").exists()


@pytest.mark.slow
def test_a_second_run_after_the_first_finished_skips_it(complete):
    results, run = complete
    before = (run.path / "summary.json").read_bytes()
    out = run_cli("debug=tiny", results=results)
    assert out.returncode == 0 and "skipped, already complete" in out.stdout
    assert (run.path / "summary.json").read_bytes() == before


def test_a_failed_rerun_keeps_the_complete_result_byte_identical(complete, tmp_path):
    results, run = complete
    files = {p.name: p.read_bytes() for p in run.path.iterdir()}
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # paths do not name the run: this reruns the same directory, and training cannot save
    out = run_cli("debug=tiny", "rerun=true", f"paths.checkpoints={blocker}/x",
                  f"paths.cache={blocker}/x", results=results)
    assert out.returncode == 1
    assert f"the complete result in {run.path} is kept as it was" in out.stderr
    assert {p.name: p.read_bytes() for p in run.path.iterdir()} == files
    failed = run.path.with_name("default.rerun-failed")
    assert (failed / "FAILED").is_file() and not (failed / "summary.json").exists()
    # a successful rerun then replaces the result and clears the failed attempt
    out = run_cli("debug=tiny", "rerun=true", results=results)
    assert out.returncode == 0, out.stderr[-2000:]
    assert run.is_complete and not failed.exists()
    assert run.read_meta()["attempt"] == 2
    assert not list(run.path.parent.glob(".default.rerun*"))


def test_a_rerun_killed_midway_leaves_the_old_result(tmp_path):
    # A long training under a real run name; its "complete" result is written by hand (the
    # rerun must keep it, whatever it holds).
    run = RunDirectory(tmp_path / "runs/debug/train.steps=100000")
    run.write_config({"seed": 0})
    run.write_summary({"score": 1.0})
    before = (run.path / "summary.json").read_bytes()
    process = start_run("debug=tiny", "rerun=true", "train.steps=100000", results=tmp_path)
    staging = run.path.with_name(".train.steps=100000.rerun")
    deadline = time.monotonic() + 60
    while not (staging / "meta.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=120)
    _, stderr = process.communicate()
    assert code == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted: {run.path} left incomplete; rerun the same command to resume")
    assert (run.path / "summary.json").read_bytes() == before
    meta = json.loads((staging / "meta.json").read_text())
    assert meta["interrupted"] == "SIGTERM" and meta["end_time"] and meta["exit_code"] == 143


@pytest.mark.slow
def test_two_jobs_on_one_uncached_model_train_it_once(tmp_path):
    jobs = [start_run("debug=tiny", "seed=7", f"method={m}", results=tmp_path)
            for m in ("lib", "pca")]
    for job in jobs:
        assert job.wait(timeout=300) == 0, job.communicate()[1][-2000:]
    trained = [json.loads((tmp_path / f"runs/debug/method={m},seed=7/summary.json").read_text())
               ["train/steps_trained_now"] for m in ("lib", "pca")]
    assert sorted(trained) == [0, 50]
    assert len(list((tmp_path / "cache").rglob("modadd-seed7-*.pt"))) == 1


@pytest.mark.slow
def test_a_job_waits_for_the_one_training_its_model(complete):
    from hydra_runs import composed
    from interbasis.config import validate
    from interbasis.training.checkpoint import checkpoint_path
    from interbasis.training.modadd import run_from_config

    results, run = complete
    train_run = run_from_config(validate(composed(["debug=tiny", "seed=9"])))
    entry = checkpoint_path(results / "cache/checkpoints/modadd", "modadd", 9,
                            train_run.trajectory())
    # released once the run has started and is waiting for it
    holder = hold_lock(entry, until=results / "runs/debug/seed=9/meta.json")
    out = run_cli("debug=tiny", "seed=9", results=results)
    holder.wait()
    assert out.returncode == 0, out.stderr[-2000:]
    assert (f"{entry} is busy: model cache entry (training it) held by pid {holder.pid}"
            in out.stdout and "waiting for it to finish" in out.stdout)


@pytest.mark.slow
def test_a_multirun_records_a_held_run_as_busy_and_goes_on(tmp_path):
    held = tmp_path / "runs/debug/seed=0"
    holder = hold_lock(held)
    try:
        out = run_cli("-m", "debug=tiny", "seed=0,1", results=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1
    assert "sweep: 2 jobs: 1 ran, 0 skipped (already complete), 0 failed, " in out.stderr
    assert "1 busy (another process holds the run)" in out.stderr
    assert RunDirectory(tmp_path / "runs/debug/seed=1").is_complete and not held.exists()
