"""``python -m interbasis.results compare EXPERIMENT``: the seed spread of the headline metrics,
method against method, as the closing notes and READMEs quote them.

    python -m interbasis.results compare modadd_paper
    python -m interbasis.results compare modadd_paper --markdown
    python -m interbasis.results compare modadd_authors --reference authors   # + their numbers

One row per node layer (rank/basis, lambda_99, k_required@0.001) and per transition (edges_99,
edges_required@0.001, then the total), one column per method and metric: ``mean [min-max]`` over
the complete runs of each method, with the number of seeds in the header. A method whose runs lack
a metric shows ``-``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from interbasis.results import authors
from interbasis.results.aggregate import default_results_root
from interbasis.results.report import (
    LAYER_COLUMNS,
    TRANSITION_COLUMNS,
    pipe_table,
    short_metric,
    spread,
)
from interbasis.results.runs_table import load_runs
from interbasis.results.store import RunDirectory

# + figure 10's tolerance-free edge metric (metrics/comparison.py: edge_area), where runs have it
COMPARED_TRANSITION_COLUMNS = (*TRANSITION_COLUMNS[:1], "ablation/edge_area",
                               *TRANSITION_COLUMNS[1:])


def seedspread(runs: pd.DataFrame, metrics: Sequence[str], rows: Sequence[str]) -> pd.DataFrame:
    """``mean [min-max]`` of ``<metric>/<row>`` per method, over the runs (one per seed)."""
    methods = sorted(runs["method"].dropna().unique())
    table = pd.DataFrame(index=list(rows))
    for metric in metrics:
        for method in methods:
            chosen = runs[runs["method"] == method]
            label = f"{short_metric(metric)} {method.upper()}"
            table[label] = [spread(chosen.get(f"{metric}/{row}")) for row in rows]
    return table


def compare_tables(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The node-layer table and the transition table (with ``total``) of one experiment."""
    layers = _rows(runs, f"{LAYER_COLUMNS[0]}/")
    transitions = [name for name in _rows(runs, f"{TRANSITION_COLUMNS[-1]}/") if name != "total"]
    total = ["total"] if f"{TRANSITION_COLUMNS[-1]}/total" in runs else []
    columns = [c for c in COMPARED_TRANSITION_COLUMNS if c != "ablation/edge_area" or any(
        key.startswith(f"{c}/") and runs[key].notna().any() for key in runs)]
    return (seedspread(runs, LAYER_COLUMNS, layers),
            seedspread(runs, columns, transitions + total))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare`` to ``python -m interbasis.results``."""
    parser = subparsers.add_parser("compare", help="seed spread of the headline metrics, "
                                                   "method against method")
    parser.add_argument("experiment", help="folder under the runs folder, e.g. modadd_paper")
    parser.add_argument("--runs", type=Path, help="runs folder (default: <results>/runs)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--reference", choices=["authors"],
                        help="also print the LIB authors' published numbers beside ours "
                             "(results/authors.py)")
    parser.add_argument("--reference-dir", type=Path,
                        help="folder of the authors' CSVs (default: paths.rib_repo)")
    parser.add_argument("--ours", default="modadd_paper",
                        help="with --reference: our own models' experiment, shown likewise")
    parser.set_defaults(run=cli)


def cli(args: argparse.Namespace) -> int:
    root = args.runs or default_results_root() / "runs"
    all_runs = load_runs(root)
    runs = all_runs[all_runs["experiment"] == args.experiment]
    if runs.empty:
        print(f"no complete runs of {args.experiment!r} under {root}")
        return 1
    seeds = runs.groupby("method")["seed"].nunique()
    print(f"{args.experiment}: " + ", ".join(
        f"{method.upper()} {count} seed{'s' if count != 1 else ''}"
        for method, count in seeds.items()) + "; mean [min-max] over seeds")
    for header, table in zip(("node layer", "transition"), compare_tables(runs)):
        if table.empty:
            continue
        table = table.rename_axis(header).reset_index()
        print()
        print(pipe_table(table.columns, table.itertuples(index=False)) if args.markdown
              else table.to_string(index=False))
    if args.reference == "authors":
        return authors.cli(args, all_runs, runs)
    return 0


def _rows(runs: pd.DataFrame, prefix: str) -> list[str]:
    """Names after ``prefix`` that these runs report, in the order their summaries list them
    (network order; ``load_runs`` sorts its columns and holds other experiments' keys too)."""
    order = {key: index for index, key in enumerate(_summary_keys(runs))}
    columns = [column for column in runs.columns
               if column.startswith(prefix) and runs[column].notna().any()]
    columns.sort(key=lambda column: order.get(column, len(order)))
    return [column.removeprefix(prefix) for column in columns]


def _summary_keys(runs: pd.DataFrame) -> list[str]:
    """The summary keys of the first run, in the order the run wrote them."""
    return list(RunDirectory(runs["path"].iloc[0]).read_summary()) if not runs.empty else []
