"""Per-run overhead of `python -m interbasis.run` against the work of a `debug=tiny` run.

    python benchmarks/bench_run_overhead.py            # ~2 minutes on 2 shared cores
    python benchmarks/bench_run_overhead.py --runs 8   # longer multiruns, steadier averages

Part 1 times each overhead component in one warm process: Hydra composition of a job's config,
the complete-run check, the records a run writes (config, meta with git state, summary), and a
W&B offline run's init + finish (the first one in a process also starts W&B's service). The
work is ``pipeline.run`` of a debug=tiny config with its model cached (basis, ablations, metrics,
graph and curves written), the median of several repeats. Part 2 measures whole commands: one
process per run (what a W&B agent or a submitit task does) and one multirun of N runs in one
process (Hydra's basic launcher; joblib workers behave the same way per worker), with and without
W&B offline. Overhead = wall time per run - the work that run reports in its summary (time/*).

Everything runs with one torch thread in a temporary results folder. Times are wall-clock on
whatever else the machine is doing: compare rows of one table, not tables of different days.

Measured here (2 cores shared with two training processes, torch 2.13, wandb 0.31): a warm
debug=tiny run does ~0.1 s of work (1.5 s as the first run of a process, which pays one-off
set-up), while each further multirun job costs ~0.3 s more (Hydra composes each job's config,
~0.11 s; records with fsync ~0.04 s; writing graph and curves) and ~0.5 s with W&B offline
(init + finish ~0.1 s). One process per run adds ~4 s of interpreter start and imports (torch,
Hydra, pandas) and ~1.2 s to start W&B's service. So the overhead cannot be under 10% of a
debug=tiny run: its work is smaller than one Hydra composition. It is under 0.2% of a paper-size
modular-addition run in a multirun, and ~1.5% with one process per run (W&B agent, submitit),
whose work is ~400-500 s (results/runs/modadd_paper/*/summary.json: basis + ablations).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["WANDB_SILENT"] = "true"

TINY = ["debug=tiny", "method=lib"]


def median_time(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def components(results: Path, repeats: int) -> list[tuple[str, float]]:
    """(name, seconds) of each overhead component and of the work, in this process."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from interbasis import pipeline
    from interbasis.config import validate
    from interbasis.results import RunDirectory, utc_now
    from interbasis.run import CONFIG_DIR, process_meta
    from interbasis.tracking import Tracker, make_tracker

    def composed() -> dict:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="config", overrides=TINY),
                                          resolve=True)

    resolved = composed()
    cfg = validate(resolved)
    run_dir = RunDirectory(results / "runs" / "bench" / "work")
    rows = [("Hydra composition + validation", median_time(lambda: validate(composed()),
                                                            repeats))]
    rows.append(("complete-run check (skip)", median_time(lambda: run_dir.is_complete, repeats)))

    def records() -> None:
        records_dir = RunDirectory(results / "runs" / "bench" / "records")
        records_dir.clear()
        records_dir.write_config(resolved)
        records_dir.write_meta({**process_meta(), "start_time": utc_now(), "attempt": 1})
        records_dir.update_meta(wandb_run_id=None)
        records_dir.write_summary({"x": 1.0})
        records_dir.update_meta(end_time=utc_now(), exit_code=0)

    process_meta()  # once per process (git state, versions), as in run.py
    rows.append(("records: config, meta, summary", median_time(records, repeats)))

    def wandb_run() -> None:
        tracker = make_tracker("offline", project="bench", dir=results / "wandb")
        tracker.start(resolved, name="bench", group="bench", tags=["bench"],
                      run_dir=run_dir.path)
        tracker.set_summary({"x": 1.0})
        tracker.finish()

    rows.append(("W&B offline init + finish, first in process", median_time(wandb_run, 1)))
    rows.append(("W&B offline init + finish", median_time(wandb_run, repeats)))

    def work() -> None:
        run_dir.clear()
        pipeline.run(cfg, run_dir, Tracker())

    work()  # trains and caches the tiny model; the first basis also pays one-off set-up costs
    rows.append(("work: pipeline.run of debug=tiny (model cached)", median_time(work, repeats)))
    return rows


def command(args: list[str], results: Path) -> float:
    env = {**os.environ, "INTERBASIS_RESULTS": str(results), "WANDB_MODE": "offline"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "interbasis.run", *args], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(args)}\n{out.stderr[-2000:]}")
    return time.perf_counter() - start


def reported_work(results: Path, experiment: str = "debug") -> list[float]:
    """time/* of every run's summary: the work each run measured for itself."""
    return [sum(value for key, value in json.loads(path.read_text()).items()
                if key.startswith("time/"))
            for path in (results / "runs" / experiment).glob("*/summary.json")]


def end_to_end(results: Path, runs: int) -> list[tuple[str, float, float]]:
    """(scenario, wall seconds per run, work seconds per run) of whole commands."""
    command(TINY, results / "warm")  # trains the tiny model once; every scenario reuses it
    rows = []
    for logger in ("none", "offline"):
        folder = results / f"single-{logger}"
        folder.mkdir(parents=True)
        os.symlink(results / "warm" / "checkpoints", folder / "checkpoints")
        walls = [command([*TINY, f"logger={logger}", f"rerun={str(i > 0).lower()}"], folder)
                 for i in range(3)]
        rows.append((f"one process per run, logger={logger}", statistics.median(walls),
                     statistics.median(reported_work(folder))))
    for logger in ("none", "offline"):
        # The marginal cost of a job: a multirun of 3N jobs minus one of N, per extra job, so the
        # process start and the first job's one-off costs cancel out.
        walls, works = [], []
        for count in (runs, 3 * runs):
            folder = results / f"multi-{logger}-{count}"
            folder.mkdir(parents=True)
            os.symlink(results / "warm" / "checkpoints", folder / "checkpoints")
            # distinct jobs of one cached model: the ablation batch size only renames the run
            sizes = ",".join(str(1024 + i) for i in range(count))
            walls.append(command(["-m", *TINY, f"logger={logger}", "threads=1",
                                  f"ablation.batch_size={sizes}"], folder))
            works.append(sum(reported_work(folder)))
        rows.append((f"multirun, each job after the first, logger={logger}",
                     (walls[1] - walls[0]) / (2 * runs), (works[1] - works[0]) / (2 * runs)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="N: multiruns of N and 3N jobs")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per component")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        os.environ["INTERBASIS_RESULTS"] = str(results / "components")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import interbasis.run"], check=True)
        imports = time.perf_counter() - start
        rows = components(results / "components", args.repeats)
        work = rows[-1][1]
        print(f"\nPart 1: components in one warm process (median of {args.repeats})\n")
        print(f"| {'component':48} | {'seconds':>8} | {'% of work':>9} |")
        print(f"| {'-' * 48} | {'-' * 8}:| {'-' * 9}:|")
        for name, seconds in [("process start + imports (python -c ...)", imports), *rows]:
            print(f"| {name:48} | {seconds:8.3f} | {100 * seconds / work:8.1f}% |")
        print("\nPart 2: whole commands, debug=tiny with its model cached\n")
        print(f"| {'scenario':50} | {'wall/run s':>10} | {'work/run s':>10} | "
              f"{'overhead s':>10} | {'% of work':>9} |")
        print(f"| {'-' * 50} | {'-' * 10}:| {'-' * 10}:| {'-' * 10}:| {'-' * 9}:|")
        for name, wall, work in end_to_end(results / "commands", args.runs):
            print(f"| {name:50} | {wall:10.3f} | {work:10.3f} | {wall - work:10.3f} | "
                  f"{100 * (wall - work) / work:8.1f}% |")


if __name__ == "__main__":
    main()
