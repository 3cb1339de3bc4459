"""The Hydra entry point: compose, validate, run, record.

Usage::

    python -m interbasis.run                                  # the default run (cached model)
    python -m interbasis.run experiment=modadd_paper seed=3   # one paper run
    python -m interbasis.run method=pca debug=tiny            # seconds, no W&B
    python -m interbasis.run -m sweep=paper_modadd            # 5 seeds x {lib, pca}
    python -m interbasis.run --cfg job                        # print the composed config
    python -m interbasis.run -m debug=tiny seed=0,1,2 hydra/launcher=local   # 2 jobs at a time

Results go to ``<paths.runs>/<experiment_name>/<run_name>/`` (run_name from the overrides); W&B
runs are offline unless ``logger=wandb`` finds an API key. A bad config or a failing run ends with
one line naming the cause (the traceback is in the run directory's FAILED file).

A run whose directory holds a complete result is skipped (``rerun=true`` redoes it), so a killed
sweep rerun with the same command redoes only what is missing; an unfinished run that is redone
continues its W&B run (the id is kept in meta.json). In a multirun a failing run is recorded and
the sweep goes on; the end prints one summary and exits 1 if any failed (``fail_fast=true`` stops
at the first failure).
"""

from __future__ import annotations

import functools
import math
import os
import secrets
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from interbasis import pipeline
from interbasis.config import ConfigError, RunConfig, validate
from interbasis.results import (
    DEFAULT_IGNORED_OVERRIDES,
    RunDirectory,
    collect_meta,
    run_name_from_overrides,
    utc_now,
)
from interbasis.results.report import format_run_summary
from interbasis.sweeps import record_job, request_stop, stop_requested
from interbasis.tracking import Tracker, make_tracker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

if not OmegaConf.has_resolver("interbasis_root"):
    OmegaConf.register_new_resolver("interbasis_root", lambda: str(PROJECT_ROOT))


# Overrides that choose the folder (experiment, experiment_name, debug), the grid (sweep) or how
# to run (rerun, fail_fast) do not name a run: a forced rerun must land in the directory it redoes,
# and a W&B sweep (which passes experiment_name) must find the runs of the same Hydra grid.
RUN_NAME_IGNORES = (*DEFAULT_IGNORED_OVERRIDES, "experiment", "experiment_name", "debug", "sweep",
                    "rerun", "fail_fast")


def run_directory(cfg: RunConfig, overrides: list[str]) -> RunDirectory:
    """``<paths.runs>/<experiment_name>/<run name from the overrides>``."""
    run_name = run_name_from_overrides(overrides, ignore=RUN_NAME_IGNORES)
    return RunDirectory(Path(cfg.paths.runs) / cfg.experiment_name / run_name)


@functools.cache
def process_meta() -> dict:
    """``collect_meta()`` once per process: the git state and library versions are those of the
    code this process imported, and a multirun job then pays no git calls (~10 ms each)."""
    return collect_meta()


def execute(cfg: RunConfig, resolved: dict, run_dir: RunDirectory,
            overrides: list[str] | None = None) -> dict | None:
    """Run one validated config in ``run_dir``; None when it was complete already (skipped)."""
    complete = run_dir.is_complete
    if complete and not cfg.rerun:
        # flush: joblib workers' stdout is a pipe and the worker may never exit cleanly
        print(format_run_summary(run_dir.read_summary()), flush=True)
        print(f"skipped, already complete (rerun=true redoes it): {run_dir.path}", flush=True)
        _report_to_wandb_agent(cfg, resolved, run_dir)
        return None
    previous = run_dir.read_meta()  # before clear(): a resumed run keeps its W&B run and counts
    run_dir.clear()
    run_dir.write_config(resolved)
    wandb_id = _wandb_run_id(cfg, None if complete else previous.get("wandb_run_id"))
    attempt = previous.get("attempt", 1 if previous else 0) + 1
    # The id is in meta.json before W&B starts, so a run killed during wandb.init resumes it too.
    run_dir.write_meta({**process_meta(), "start_time": utc_now(),
                        "overrides": list(overrides or []), "attempt": attempt,
                        "wandb_run_id": wandb_id})
    tracker = _start_tracker(cfg, resolved, run_dir, wandb_id)
    run_dir.update_meta(wandb_run_id=tracker.run_id, wandb_run_path=tracker.run_path)
    exit_code = 1
    try:
        summary = pipeline.run(cfg, run_dir, tracker)
        run_dir.write_summary(summary)
        exit_code = 0
        print(format_run_summary(summary))
        print(f"run complete: {run_dir.path}", flush=True)
        return summary
    except BaseException as error:
        run_dir.mark_failed(error)
        raise
    finally:
        run_dir.update_meta(end_time=utc_now(), exit_code=exit_code)
        tracker.finish(exit_code)


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(hydra_cfg: DictConfig) -> None:
    hydra_conf = HydraConfig.get()
    overrides = list(hydra_conf.overrides.task)
    # In a multirun a failure is recorded and the sweep goes on; SweepReport sums up at the end.
    sweep_dir = hydra_conf.sweep.dir if hydra_conf.mode == RunMode.MULTIRUN else None
    job = hydra_conf.job.num if sweep_dir is not None else 0  # unset outside a multirun
    run_dir = None
    if sweep_dir is not None and stop_requested(sweep_dir):
        record_job(sweep_dir, job, overrides, "cancelled")
        return
    try:
        resolved = OmegaConf.to_container(hydra_cfg, resolve=True)
        cfg = validate(resolved)
        run_dir = run_directory(cfg, overrides)
        if sweep_dir is not None:
            record_job(sweep_dir, job, overrides, "running", run_dir.path)
        summary = execute(cfg, resolved, run_dir, overrides)
        if sweep_dir is not None:
            status = "skipped" if summary is None else "complete"
            record_job(sweep_dir, job, overrides, status, run_dir.path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        config_error = isinstance(error, ConfigError)
        cause = str(error) if config_error else f"{type(error).__name__}: {error}"
        print(cause if config_error else f"run failed: {cause}", file=sys.stderr, flush=True)
        if sweep_dir is None:
            sys.exit(2 if config_error else 1)
        record_job(sweep_dir, job, overrides, "failed", run_dir and run_dir.path,
                   error=" ".join(cause.split()))
        if hydra_cfg.get("fail_fast") is True:
            traceback.print_exc()
            print(f"fail_fast: stopping the sweep after job {job}", file=sys.stderr)
            request_stop(sweep_dir)


def _wandb_run_id(cfg: RunConfig, previous_id: str | None) -> str | None:
    # Under a W&B agent, WANDB_RUN_ID names the sweep's run: that is the one to log to.
    if cfg.logger.kind == "none" or os.environ.get("WANDB_RUN_ID"):
        return None
    return previous_id or secrets.token_hex(6)


def _start_tracker(cfg: RunConfig, resolved: dict, run_dir: RunDirectory,
                   run_id: str | None) -> Tracker:
    tracker = make_tracker(cfg.logger.kind, project=cfg.logger.project, entity=cfg.logger.entity,
                           dir=Path(cfg.paths.wandb))
    tracker.start(resolved, name=f"{cfg.experiment_name}/{run_dir.path.name}",
                  group=cfg.experiment_name, tags=[cfg.model.family, cfg.method.name,
                                                   f"seed{cfg.seed}"],
                  run_dir=run_dir.path, run_id=run_id)
    return tracker


def _report_to_wandb_agent(cfg: RunConfig, resolved: dict, run_dir: RunDirectory) -> None:
    """Give a W&B sweep's run the stored summary, so its search sees the metric of a skipped run."""
    if not os.environ.get("WANDB_SWEEP_ID") or cfg.logger.kind == "none":
        return
    tracker = _start_tracker(cfg, resolved, run_dir, None)
    summary = run_dir.read_summary()
    tracker.set_summary({k: v for k, v in summary.items()
                         if not (isinstance(v, float) and math.isnan(v))})
    tracker.finish(0)


if __name__ == "__main__":
    # Run the importable interbasis.run.main, not this __main__ copy: launchers that pickle the
    # task (submitit) can then load it by name in another process or on another node.
    from interbasis.run import main as importable_main

    importable_main()
