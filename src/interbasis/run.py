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

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from interbasis.config import ConfigError, RunConfig, register_defaults, validate
from interbasis.interrupt import Interrupted, stop_on_signals
from interbasis.locking import LockBusy
from interbasis.overrides import check_overrides
from interbasis.progress import setup_logging

if TYPE_CHECKING:
    from interbasis.results import RunDirectory

# torch, pandas and the results store are imported where a run needs them, not here: `--help`
# and a mistyped override answer in about a second.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"
log = logging.getLogger("interbasis")

if not OmegaConf.has_resolver("interbasis_root"):
    OmegaConf.register_new_resolver("interbasis_root", lambda: str(PROJECT_ROOT))
register_defaults()  # the schema's defaults, composed first by conf/config.yaml


# Overrides that choose the folder (experiment, experiment_name, debug), the grid (sweep) or how
# to run (rerun, fail_fast) do not name a run: a forced rerun must land in the directory it redoes,
# and a W&B sweep (which passes experiment_name) must find the runs of the same Hydra grid.
RUN_NAME_IGNORES = ("logger", "logger.*", "paths", "paths.*", "hydra", "hydra.*", "progress",
                    "progress.*", "threads", "experiment", "experiment_name", "debug", "sweep",
                    "rerun", "fail_fast", "estimate")


def run_directory(cfg: RunConfig, overrides: list[str]) -> RunDirectory:
    """``<paths.runs>/<experiment_name>/<run name from the overrides>``."""
    from interbasis.results import RunDirectory, run_name_from_overrides

    # debug=tiny puts every family and experiment in one folder: there the experiment names the run
    debug = any(override.startswith("debug=") for override in overrides)
    ignore = [key for key in RUN_NAME_IGNORES if not (debug and key == "experiment")]
    run_name = run_name_from_overrides(overrides, ignore=ignore)
    return RunDirectory(Path(cfg.paths.runs) / cfg.experiment_name / run_name)


def main() -> None:
    """The command: overrides checked first (one line and exit 2 for a mistyped key or choice),
    then Hydra composes and runs :func:`task` (once, or per job of a multirun)."""
    args = sys.argv[1:]
    if not {"--help", "-h", "--hydra-help"} & set(args):
        problem = check_overrides(args, CONFIG_DIR)
        if problem:
            print(problem, file=sys.stderr, flush=True)
            sys.exit(2)
    task()


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def task(hydra_cfg: DictConfig) -> None:
    """One run of a composed config: validate, lock, run, record (see the module docstring)."""
    from interbasis.runner import execute
    from interbasis.sweeps import (
        read_jobs,
        record_job,
        request_stop,
        stop_requested,
        summary_lines,
    )

    setup_logging()
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
        with stop_on_signals():
            resolved = OmegaConf.to_container(hydra_cfg, resolve=True)
            assert isinstance(resolved, dict)  # a DictConfig's container is a dict
            cfg = validate(resolved)
            if _follower(cfg):  # torchrun / SLURM tasks: ranks > 0 build their shard, no more
                sweep_dir = None
                from interbasis.ranks import follow

                follow(cfg)
                return
            run_dir = run_directory(cfg, overrides)
            if sweep_dir is not None:
                record_job(sweep_dir, job, overrides, "running", run_dir.path)
            summary = execute(cfg, resolved, run_dir, overrides)
            if sweep_dir is not None:
                status = "skipped" if summary is None else "complete"
                record_job(sweep_dir, job, overrides, status, run_dir.path)
    except Interrupted as stop:
        where = run_dir.path if run_dir is not None else "the run"
        if sweep_dir is not None:
            record_job(sweep_dir, job, overrides, "interrupted",
                       None if run_dir is None else run_dir.path)
            print("\n".join(summary_lines(read_jobs(sweep_dir))[0]), file=sys.stderr)
        print(f"interrupted: {where} left incomplete; rerun the same command to resume",
              file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    except LockBusy as busy:
        print(str(busy), file=sys.stderr, flush=True)
        if sweep_dir is None:
            sys.exit(1)
        record_job(sweep_dir, job, overrides, "busy", None if run_dir is None else run_dir.path,
                   error=str(busy))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        config_error = isinstance(error, ConfigError)
        cause = str(error) if config_error else f"{type(error).__name__}: {error}"
        print(cause if config_error else f"run failed: {cause}", file=sys.stderr, flush=True)
        if sweep_dir is None:
            sys.exit(2 if config_error else 1)
        record_job(sweep_dir, job, overrides, "failed", None if run_dir is None else run_dir.path,
                   error=" ".join(cause.split()))
        if hydra_cfg.get("fail_fast") is True:
            traceback.print_exc()
            print(f"fail_fast: stopping the sweep after job {job}", file=sys.stderr)
            request_stop(sweep_dir)


def _follower(cfg: RunConfig) -> bool:
    """Join the process group torchrun or submitit describe; True on a rank other than 0."""
    if "WORLD_SIZE" not in os.environ and "SUBMITIT_EXECUTOR" not in os.environ:
        return False  # one process: no torch import here, so --help and errors stay fast
    from interbasis.ranks import init_from_env, rank_and_size

    init_from_env(cfg.device)
    if rank_and_size()[0] == 0:
        return False
    log.setLevel(logging.WARNING)  # rank 0 says what the run does
    return True


if __name__ == "__main__":
    # Run the importable interbasis.run.main, not this __main__ copy: launchers that pickle the
    # task (submitit) can then load it by name in another process or on another node.
    from interbasis.run import main as importable_main

    importable_main()
