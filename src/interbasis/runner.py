"""One validated run in its run directory: lock, (re)run beside the old result, record, report.

:func:`execute` is what ``interbasis.run`` calls for each composed config (once, or per job of a
multirun); it holds the run directory's lock for the whole run, so a second process on the same
run stops at once (:class:`~interbasis.locking.LockBusy`), and it writes a rerun of a complete run
beside it, swapping it in only when complete.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import sys
from pathlib import Path

from interbasis.config import RunConfig
from interbasis.interrupt import Interrupted
from interbasis.results import RunDirectory, utc_now
from interbasis.results.report import format_run_summary
from interbasis.tracking import Tracker, make_tracker

log = logging.getLogger("interbasis")


@functools.cache
def process_meta() -> dict:
    """``collect_meta()`` once per process: the git state and library versions are those of the
    code this process imported, and a multirun job then pays no git calls (~10 ms each)."""
    from interbasis.results import collect_meta

    return collect_meta()


def execute(cfg: RunConfig, resolved: dict, run_dir: RunDirectory,
            overrides: list[str] | None = None) -> dict | None:
    """Run one validated config in ``run_dir``; None when it was complete already (skipped).

    The run directory's lock is held from before the first write to the end (a second process
    gets :class:`LockBusy`). A rerun of a complete run is written to a hidden sibling and swapped
    in only once it is complete; a failed rerun leaves the old result untouched and its record in
    ``<name>.rerun-failed``. A complete result is read without the lock: it only ever changes by
    that atomic swap.
    """
    from interbasis import pipeline, ranks  # torch and the model families, once a run is certain

    with ranks.leading():  # under torchrun: the other ranks learn whether a build follows
        return _execute(cfg, resolved, run_dir, overrides, pipeline, ranks)


def _execute(cfg: RunConfig, resolved: dict, run_dir: RunDirectory, overrides: list[str] | None,
             pipeline, ranks) -> dict | None:
    if run_dir.is_complete and not cfg.rerun:
        _skip(cfg, resolved, run_dir)
        return None
    with run_dir.lock():
        run_dir.recover()
        complete = run_dir.is_complete
        if complete and not cfg.rerun:  # another process finished it while we took the lock
            _skip(cfg, resolved, run_dir)
            return None
        target = run_dir.staging() if complete else run_dir
        previous = run_dir.read_meta()  # a resumed run keeps its W&B run and counts attempts
        target.clear()
        target.write_config(resolved)
        wandb_id = _wandb_run_id(cfg, None if complete else previous.get("wandb_run_id"))
        attempt = previous.get("attempt", 1 if previous else 0) + 1
        # The id is in meta.json before W&B starts, so a run killed during wandb.init resumes it.
        target.write_meta({**process_meta(), "start_time": utc_now(),
                           "overrides": list(overrides or []), "attempt": attempt,
                           "wandb_run_id": wandb_id})
        log.info("run directory: %s%s", run_dir.path,
                 " (rerun: written beside the complete result, swapped in at the end)"
                 if complete else "")
        tracker = _start_tracker(cfg, resolved, target, wandb_id)
        target.update_meta(wandb_run_id=tracker.run_id, wandb_run_path=tracker.run_path)
        exit_code, interrupted = 1, None
        try:
            summary = pipeline.run(cfg, target, tracker)
            target.write_summary(summary)
            ranks.remove_checkpoint(target.path)  # the resumable build's stages: done with
            exit_code = 0
        except Interrupted as stop:
            exit_code, interrupted = stop.exit_code, stop.name
            raise
        except BaseException as error:
            target.mark_failed(error)
            raise
        finally:
            target.update_meta(end_time=utc_now(), exit_code=exit_code,
                               **({"interrupted": interrupted} if interrupted else {}))
            tracker.finish(exit_code)  # W&B's closing banner before the table, not after it
            if target is not run_dir and exit_code == 0:
                run_dir.replace_with(target)
            elif target is not run_dir and interrupted is None:
                kept = run_dir.keep_failed_attempt(target)
                print(f"rerun failed; the complete result in {run_dir.path} is kept as it was "
                      f"(the failed attempt: {kept.path})", file=sys.stderr, flush=True)
    print(format_run_summary(summary))
    print(f"run complete: {run_dir.path}", flush=True)
    return summary


def _skip(cfg: RunConfig, resolved: dict, run_dir: RunDirectory) -> None:
    # flush: joblib workers' stdout is a pipe and the worker may never exit cleanly
    print(format_run_summary(run_dir.read_summary()), flush=True)
    print(f"skipped, already complete (rerun=true redoes it): {run_dir.path}", flush=True)
    _report_to_wandb_agent(cfg, resolved, run_dir)


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
