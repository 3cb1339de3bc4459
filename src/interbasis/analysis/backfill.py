"""Add the analysis files of newer pipelines to runs that finished before those files existed.

    python -m interbasis.analysis.backfill results/runs/modadd_paper        # every complete run
    python -m interbasis.analysis.backfill results/runs/modadd_paper/method=lib,seed=0 --force

For each complete run (a folder holding a complete ``summary.json``) it writes, when missing:

- ``modularity.json``: the Leiden partitions (``interbasis.analysis.partition``), from the run's
  graph file and the ``edges_required`` counts in its summary (eps is recomputed from them);
- ``fourier.csv`` (modular addition only): Fourier purity per feature, from the graph file and the
  trained model in the checkpoint cache (``<results>/checkpoints/modadd/``; the run's own
  ``paths.checkpoints`` is not used, since committed runs name the machine they ran on).

This is the one writer that adds files to a finished run, and it does so narrowly: only these
analysis files, each written atomically (``atomic_write_text``) beside the summary; the summary,
config, curves and graph are never touched, so what the summary describes does not change.
``RunDirectory`` refuses such writes on purpose and is bypassed here for exactly these names.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from interbasis.analysis.fourier import FOURIER_TABLE, fourier_table
from interbasis.analysis.partition import (
    DEFAULT_RESOLUTIONS,
    MODULARITY_RECORD,
    eps_from_required,
    partition_record,
)
from interbasis.basis.types import load_graph
from interbasis.results.store import SUMMARY_FILE, RunDirectory, _dumps, atomic_write_text


class BackfillError(RuntimeError):
    """A run that cannot be backfilled (missing graph, checkpoint or counts)."""


def complete_runs(path: Path) -> list[RunDirectory]:
    """Complete runs at ``path``: the run itself, or those below it (up to two levels)."""
    candidates = [path, *sorted(path.glob("*")), *sorted(path.glob("*/*"))]
    return [RunDirectory(p) for p in candidates
            if p.is_dir() and (p / SUMMARY_FILE).is_file() and RunDirectory(p).is_complete]


def backfill_run(run_dir: RunDirectory, results_root: Path | None = None, force: bool = False,
                 resolutions: Sequence[float] = DEFAULT_RESOLUTIONS) -> list[str]:
    """Write the missing analysis files of one complete run; returns the names written."""
    if not run_dir.is_complete:
        raise BackfillError(f"{run_dir.path} is not a complete run")
    summary = run_dir.read_summary()
    config = yaml.safe_load((run_dir.path / "config.yaml").read_text(encoding="utf-8"))
    method = config["method"]["name"]
    graph = load_graph(run_dir.path / f"graph_{method}.pt")
    # <results>/runs/<experiment>/<run>: the checkpoint cache sits beside runs/
    results_root = results_root or run_dir.path.resolve().parents[2]
    written = []

    target = run_dir.path / f"{MODULARITY_RECORD}.json"
    if graph.edges is not None and (force or not target.exists()):
        delta = config["ablation"]["edge_delta"]
        key = f"ablation/edges_required@{delta:g}/"
        counts = {name: summary[key + name] for name in graph.transition_names
                  if key + name in summary}
        if len(counts) == len(graph.transition_names):
            record = partition_record(graph, eps_from_required(graph, counts), delta,
                                      resolutions)
            atomic_write_text(target, _dumps(record))
            written.append(target.name)

    target = run_dir.path / f"{FOURIER_TABLE}.csv"
    if config["model"]["family"] == "modadd" and (force or not target.exists()):
        model = _modadd_model(config, results_root)
        table = fourier_table(model, graph, int(config["data"]["p"]))
        atomic_write_text(target, table.to_csv(index=False))
        written.append(target.name)
    return written


def _modadd_model(config: dict, results_root: Path):
    # imported here: only modular-addition runs need the training code
    from interbasis.config import validate
    from interbasis.training.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
    from interbasis.training.modadd import (
        FAMILY,
        ModAddRunConfig,
        model_from_checkpoint,
        run_from_config,
    )

    cfg = validate(config)
    if not isinstance(cfg, ModAddRunConfig):
        raise BackfillError(f"a {cfg.model.family} run has no modular-addition checkpoint")
    run = run_from_config(cfg)
    path = checkpoint_path(results_root / "checkpoints" / FAMILY, FAMILY, run.seed,
                           run.trajectory())
    cached = results_root / "cache" / "checkpoints" / FAMILY / path.name  # non-paper models
    path = cached if not path.is_file() and cached.is_file() else path
    if not path.is_file():
        raise BackfillError(f"no checkpoint {path}; train it with `python -m "
                            f"interbasis.training.modadd --seed {run.seed} --steps "
                            f"{run.train.steps}`")
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as error:
        raise BackfillError(str(error)) from None
    if checkpoint["step"] != run.train.steps:
        raise BackfillError(f"{path} is at step {checkpoint['step']}, the run used "
                            f"{run.train.steps} steps")
    return model_from_checkpoint(checkpoint, run.model, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a run folder, an experiment folder or runs/")
    parser.add_argument("--results", type=Path, default=None,
                        help="results root holding checkpoints/ (default: from the run's path)")
    parser.add_argument("--force", action="store_true", help="recompute files that exist")
    parser.add_argument("--resolutions", type=float, nargs="+", default=list(DEFAULT_RESOLUTIONS))
    args = parser.parse_args(argv)
    runs = complete_runs(args.path)
    if not runs:
        print(f"no complete runs under {args.path}", file=sys.stderr)
        return 1
    failures = 0
    for run_dir in runs:
        try:
            written = backfill_run(run_dir, args.results, args.force, args.resolutions)
        except (BackfillError, FileNotFoundError, KeyError, ValueError) as error:
            print(f"{run_dir.path}: skipped: {error}", file=sys.stderr)
            failures += 1
            continue
        print(f"{run_dir.path}: {', '.join(written) if written else 'nothing missing'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
