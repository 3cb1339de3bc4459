"""``python -m interbasis.results status``: complete, failed and unfinished runs per experiment,
then one line per run that is not complete (its path and, for a failure, its error)."""

from __future__ import annotations

import argparse
from pathlib import Path

from interbasis.results.aggregate import default_results_root
from interbasis.results.runs_table import load_runs

# A directory without summary or FAILED is a run that was killed, or one still running (its lock
# says which, but reading it from here could be wrong on a shared store: say both).
LABELS = {"incomplete": "incomplete (killed or still running)"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``status`` to ``python -m interbasis.results``."""
    parser = subparsers.add_parser("status", help="count complete, failed and unfinished runs")
    parser.add_argument("--runs", type=Path, help="runs folder (default: <results>/runs)")
    parser.set_defaults(run=cli)


def cli(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs or default_results_root() / "runs", include_failed=True)
    if runs.empty:
        print("no runs")
        return 0
    runs["status"] = runs["status"].replace(LABELS)
    counts = runs.groupby(["experiment", "status"]).size().unstack(fill_value=0)
    print(counts.to_string())
    for row in runs[runs["status"] != "complete"].itertuples():
        error = row.error if isinstance(row.error, str) else None  # pandas gives NaN for none
        print(f"{row.status}: {row.path}" + (f": {error}" if error else ""))
    return 0
