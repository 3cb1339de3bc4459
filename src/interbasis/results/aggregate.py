"""Tables for the figures, built from every complete run in the store: ``results/tables/*.csv``.

- ``runs.csv``: one row per complete run (``load_runs``: experiment, run_name, path relative to
  the runs folder, meta columns, every summary metric) plus ``overrides`` and one
  ``param/<key>`` column per Hydra override, so a study's swept values (tau, d_mlp) are columns.
- ``curves.csv``: every run's ablation curves (``curves.csv``, long format) with the run's
  experiment, run_name, model, method and seed in front.
- ``<name>.csv``: every other per-run table (e.g. a family's analysis tables), stacked the same way.

Only complete runs are read (failed, killed or running ones are left out). Per-run CSVs are
stacked as text after checking their header, so thousands of runs aggregate in seconds; a file
whose header differs from the first one of its name is read with pandas and aligned instead.
Every table is written atomically: a reader never sees a half-written one.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from interbasis.results.runs_table import load_runs
from interbasis.results.store import DEFAULT_IGNORED_OVERRIDES, META_FILE, atomic_write_text

# Overrides that do not change what a run computes get no param/ column.
NOT_PARAMS = (*DEFAULT_IGNORED_OVERRIDES, "rerun", "fail_fast", "sweep", "debug", "experiment_name")
KEY_COLUMNS = ["experiment", "run_name", "model", "method", "seed"]
RUNS_TABLE = "runs"
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def default_results_root() -> Path:
    """``$INTERBASIS_RESULTS`` or ``<project>/results``, as ``conf/paths/default.yaml`` has it."""
    return Path(os.environ.get("INTERBASIS_RESULTS") or PROJECT_ROOT / "results")


def aggregate(runs_root: str | os.PathLike, out_dir: str | os.PathLike,
              experiments: Iterable[str] | None = None) -> dict[str, int]:
    """Write the tables for the complete runs under ``runs_root``; returns rows per table."""
    runs = load_runs(runs_root)
    if experiments is not None:
        runs = runs[runs["experiment"].isin(list(experiments))].reset_index(drop=True)
    out = Path(out_dir)
    runs = _with_overrides(runs)
    # Paths relative to the runs folder: committed tables must not carry one machine's paths.
    table = runs.assign(path=[os.path.relpath(path, runs_root) for path in runs["path"]])
    atomic_write_text(out / f"{RUNS_TABLE}.csv", table.to_csv(index=False))
    rows = {RUNS_TABLE: len(runs)}
    stacks: dict[str, _Stack] = {}
    for record in runs.to_dict("records"):
        keys = [_key_value(record.get(column)) for column in KEY_COLUMNS]
        for entry in os.scandir(record["path"]):
            if entry.is_file() and entry.name.endswith(".csv") and not entry.name.startswith("."):
                name = entry.name[:-4]
                if name == RUNS_TABLE:
                    continue  # the runs table is ours; a per-run file of that name would clash
                stacks.setdefault(name, _Stack()).add(Path(entry.path), keys)
    for name, stack in sorted(stacks.items()):
        text, count = stack.text()
        atomic_write_text(out / f"{name}.csv", text)
        rows[name] = count
    return rows


class _Stack:
    """Rows of one per-run table across runs, keyed by the run's KEY_COLUMNS."""

    def __init__(self) -> None:
        self.header: str | None = None
        self.lines: list[str] = []
        self.odd: list[pd.DataFrame] = []  # files with another header: aligned by pandas

    def add(self, path: Path, keys: list[str]) -> None:
        text = path.read_text(encoding="utf-8")
        header, _, body = text.partition("\n")
        if self.header is None:
            self.header = header
        if header != self.header:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            frame.insert(0, "_keys", [keys] * len(frame))
            self.odd.append(frame)
            return
        prefix = _csv_line(keys)
        self.lines.extend(prefix + "," + line for line in body.splitlines() if line)

    def text(self) -> tuple[str, int]:
        header = _csv_line(KEY_COLUMNS) + "," + (self.header or "")
        text = header + "\n" + "".join(line + "\n" for line in self.lines)
        count = len(self.lines)
        if self.odd:
            # Rare (a run written by an older version): align all rows by column name.
            main = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            extra = pd.concat(self.odd, ignore_index=True)
            extra[KEY_COLUMNS] = pd.DataFrame(extra.pop("_keys").tolist(), index=extra.index)
            merged = pd.concat([main, extra], ignore_index=True)
            front = KEY_COLUMNS + [c for c in merged.columns if c not in KEY_COLUMNS]
            text, count = merged[front].to_csv(index=False), len(merged)
        return text, count


def _with_overrides(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``overrides`` and ``param/<key>`` columns from each run's meta.json."""
    overrides = []
    for path in runs["path"]:
        try:
            meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        overrides.append(list(meta.get("overrides") or []) if isinstance(meta, dict) else [])
    params = pd.DataFrame.from_records(
        [dict(pair for pair in (override.lstrip("+").split("=", 1) for override in run)
              if len(pair) == 2 and not _ignored(pair[0]))
         for run in overrides], index=runs.index)
    params = params.rename(columns=lambda key: f"param/{key}")
    extra = pd.DataFrame({"overrides": [" ".join(run) for run in overrides]}, index=runs.index)
    return pd.concat([runs, extra, params], axis=1)


def _ignored(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in NOT_PARAMS)


def _key_value(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN: no such key
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # seeds come back as floats when some run lacks one
    return str(value)


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aggregate`` to ``python -m interbasis.results``."""
    parser = subparsers.add_parser("aggregate", help="write results/tables/*.csv from all runs")
    parser.add_argument("--runs", type=Path, help="runs folder (default: <results>/runs)")
    parser.add_argument("--out", type=Path, help="tables folder (default: <results>/tables)")
    parser.add_argument("--experiment", action="append",
                        help="only this experiment (repeat for several)")
    parser.set_defaults(run=cli)


def cli(args: argparse.Namespace) -> int:
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
