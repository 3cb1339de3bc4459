"""Complete a run's LLC over training: the LLC at the snapshots its table has none for.

A run with ``analysis.llc_snapshot_every=N`` estimates the LLC at every N-th snapshot only; this
estimates the rest (same settings, same seeds: the LLC at a snapshot does not depend on which
others were done, tested) and writes the completed run as a NEW run directory beside the old
one, ``<old name>,llc_completed``: every file of the old run, the table with the LLC at every
snapshot, all traces, the config with ``analysis.llc_snapshot_every: 0`` (what it now holds) and,
in ``meta.json``, ``llc_completed`` (the old run and the steps added here). The old directory is
left alone; delete it once the new one is complete. Progress is kept after each snapshot in
``<results>/scratch/llc_complete/`` so an interrupted completion resumes where it stopped.
The completed table is logged to W&B (offline, per the run's logger) as curves by step.

    python -m interbasis.analysis.llc_complete "results/runs/modadd_degeneracy/<run>"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch
import yaml

from interbasis.analysis.llc import (
    LLC_KEY,
    OVER_TRAINING,
    TRACES,
    estimate_llc,
    settings_from_config,
    snapshots,
    training_objective,
)

SUFFIX = ",llc_completed"


def complete(run_path: str | Path, log=print) -> Path:
    """The completed copy of the run at ``run_path`` (see the module docstring)."""
    from interbasis.config import validate
    from interbasis.results import RunDirectory

    old = Path(run_path)
    summary = json.loads((old / "summary.json").read_text(encoding="utf-8"))
    if summary.get("status") != "complete":
        raise ValueError(f"{old} is not a complete run")
    config = yaml.safe_load((old / "config.yaml").read_text(encoding="utf-8"))
    # the paths of the results store the run is in now (a run keeps those it was made with,
    # which may name a checkout that has moved since)
    results = old.parent.parent.parent.resolve()
    config["paths"].update(root=str(results.parent), results=str(results),
                           runs=str(results / "runs"), checkpoints=str(results / "checkpoints"),
                           wandb=str(results / "wandb"),
                           cache=str(results / "cache" / "checkpoints"))
    cfg = validate(config)
    torch.set_num_threads(cfg.threads)
    table = pd.read_csv(old / f"{OVER_TRAINING}.csv")
    if LLC_KEY not in table:
        raise ValueError(f"{old}/{OVER_TRAINING}.csv has no {LLC_KEY} column: not an LLC run")
    missing = table.loc[table[LLC_KEY].isna() & table[f"{LLC_KEY}_diverged"].isna(), "step"]
    scratch = Path(cfg.paths.results) / "scratch" / "llc_complete" / old.parent.name / old.name
    scratch.mkdir(parents=True, exist_ok=True)
    prepared = SimpleNamespace(summary=summary, model=None)
    objective = training_objective(cfg, prepared)
    settings = settings_from_config(cfg.analysis)
    models = dict(snapshots(cfg, prepared))
    for step in missing.astype(int):
        done = scratch / f"step{step:07d}.csv"
        if done.is_file():
            continue
        start = time.perf_counter()
        found = estimate_llc(models[step], objective.inputs, objective.targets, objective.loss,
                             settings, n=objective.n)
        log(f"step {step}: {found.line()}")
        row = {k: v for k, v in found.summary().items() if k.startswith(LLC_KEY)}
        row.update({"step": step, "time/llc_s": found.seconds,
                    "time/llc_wall_s": time.perf_counter() - start})
        found.traces.assign(snapshot=step).to_csv(scratch / f"traces{step:07d}.csv", index=False)
        tmp = done.with_suffix(".tmp")
        pd.DataFrame([row]).to_csv(tmp, index=False)
        tmp.replace(done)  # a snapshot counts as done only once its row is whole
    added = pd.concat([pd.read_csv(scratch / f"step{int(s):07d}.csv") for s in missing])
    completed = table.set_index("step")
    added = added.set_index("step")
    completed.loc[added.index, [c for c in added if c in completed]] = \
        added[[c for c in added if c in completed]]
    completed = completed.reset_index()
    traces = pd.concat([pd.read_csv(old / f"{TRACES}_over_training.csv"),
                        *(pd.read_csv(scratch / f"traces{int(s):07d}.csv") for s in missing)])
    new = RunDirectory(old.parent / f"{old.name}{SUFFIX}")
    if (new.path / "summary.json").is_file():
        raise ValueError(f"{new.path} is already complete")
    new.path.mkdir(parents=True, exist_ok=True)
    for path in old.iterdir():
        if path.is_file() and path.name not in ("summary.json", "config.yaml", "meta.json",
                                                f"{OVER_TRAINING}.csv",
                                                f"{TRACES}_over_training.csv"):
            shutil.copy2(path, new.path / path.name)
    config["analysis"]["llc_snapshot_every"] = 0
    new.write_config(config)
    new.write_table(OVER_TRAINING, completed)
    new.write_table(f"{TRACES}_over_training", traces.sort_values(["snapshot", "chain", "step"]))
    meta = json.loads((old / "meta.json").read_text(encoding="utf-8"))
    meta["llc_completed"] = {"from": old.name, "steps_added": [int(s) for s in missing],
                             "command": f"python -m interbasis.analysis.llc_complete {old}"}
    new.write_meta(meta)
    _log_to_wandb(cfg, config, new.path, completed)
    new.write_summary({k: v for k, v in summary.items() if k != "status"})
    return new.path


def _log_to_wandb(cfg, config: dict, run_dir: Path, table: pd.DataFrame) -> None:
    """The completed table as W&B curves by step (``<table>/<column>``), as the pipeline logs."""
    from interbasis.tracking import make_tracker

    tracker = make_tracker(cfg.logger.kind, project=cfg.logger.project,
                           entity=cfg.logger.entity, dir=Path(cfg.paths.wandb))
    tracker.start(config, name=f"{cfg.experiment_name}/{run_dir.name}",
                  group=cfg.experiment_name, tags=[cfg.model.family, "llc_completed"],
                  run_dir=run_dir)
    try:
        for row in table.to_dict(orient="records"):
            tracker.log_metrics({f"{OVER_TRAINING}/{k}": v for k, v in row.items()
                                 if k != "step" and pd.notna(v)}, step=int(row["step"]))
    finally:
        tracker.finish(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a complete run directory with an LLC over training")
    args = parser.parse_args(argv)
    try:
        print(f"completed: {complete(args.run)}")
    except (ValueError, FileNotFoundError) as error:
        print(f"llc_complete: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
