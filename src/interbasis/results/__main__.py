"""The results store from the command line.

Usage::

    python -m interbasis.results aggregate              # results/tables/*.csv from all runs
    python -m interbasis.results aggregate --experiment modadd_paper --runs /scratch/runs
    python -m interbasis.results status                 # complete / failed / unfinished runs

Each subcommand is registered by one ``add_<name>(subparsers)`` function listed in SUBCOMMANDS;
it sets ``func`` (args -> exit status). Paths default to ``$INTERBASIS_RESULTS`` or ``results/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from interbasis.results.aggregate import aggregate, default_results_root
from interbasis.results.store import load_runs


def add_aggregate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("aggregate", help="write results/tables/*.csv from all runs")
    parser.add_argument("--runs", type=Path, help="runs folder (default: <results>/runs)")
    parser.add_argument("--out", type=Path, help="tables folder (default: <results>/tables)")
    parser.add_argument("--experiment", action="append",
                        help="only this experiment (repeat for several)")
    parser.set_defaults(func=_aggregate)


def _aggregate(args: argparse.Namespace) -> int:
    runs = args.runs or default_results_root() / "runs"
    out = args.out or default_results_root() / "tables"
    if not runs.is_dir():
        print(f"error: no runs folder at {runs}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows = aggregate(runs, out, args.experiment)
    for name, count in rows.items():
        print(f"{out / name}.csv: {count} rows")
    print(f"aggregated {rows['runs']} complete runs in {time.perf_counter() - start:.1f} s")
    return 0


def add_status(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="count complete, failed and unfinished runs")
    parser.add_argument("--runs", type=Path, help="runs folder (default: <results>/runs)")
    parser.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs or default_results_root() / "runs", include_failed=True)
    if runs.empty:
        print("no runs")
        return 0
    counts = runs.groupby(["experiment", "status"]).size().unstack(fill_value=0)
    print(counts.to_string())
    for row in runs[runs["status"] != "complete"].itertuples():
        print(f"{row.status}: {row.path}" + (f": {row.error}" if row.error else ""))
    return 0


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_aggregate, add_status]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interbasis.results",
                                     description="the interbasis results store")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
