"""Reading the store back as a table: one row per run, for figures, compare and status."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from interbasis.results.configs import config_columns
from interbasis.results.store import (
    BASE_COLUMNS,
    CONFIG_FILE,
    FAILED_FILE,
    META_COLUMNS,
    META_FILE,
    STATUS_COMPLETE,
    SUMMARY_FILE,
    read_json_or_none,
)


def load_runs(path: str | os.PathLike = "results/runs", include_failed: bool = False,
              config: bool = True) -> pd.DataFrame:
    """One row per complete run under ``<path>/<experiment>/<run_name>/``.

    Columns: experiment, run_name, path, status, git_commit, wandb_run_id, start_time, end_time,
    then every other summary key (sorted; NaN where a run lacks the key; a summary key named
    like one of the first columns is shadowed by it), then with ``config`` the resolved config
    as ``config/<dotted.key>`` columns (lists as their text), so that a sweep's runs group by
    any parameter, as W&B's runs table does: ``runs.groupby("config/model.m")``. Only
    summary.json, meta.json and config.yaml are read. With ``include_failed``,
    failed and incomplete runs (killed or still running) are listed too, with ``status``
    "failed" / "incomplete" and the first line of the failure in an ``error`` column.
    A missing or empty folder gives an empty frame with the base columns.
    """
    root = Path(path)
    records: list[dict[str, Any]] = []
    summary_keys: dict[str, None] = {}
    config_keys: dict[str, None] = {}
    for experiment_dir in _subdirs(root):
        for run_dir in _subdirs(experiment_dir):
            summary = read_json_or_none(run_dir / SUMMARY_FILE)
            complete = isinstance(summary, dict) and summary.get("status") == STATUS_COMPLETE
            if not complete and not include_failed:
                continue
            # Where the run lies and what its meta says win over a same-named summary key
            # (a run may well record its own "experiment").
            record: dict[str, Any] = dict(summary) if complete else {}
            if complete:
                summary_keys.update(dict.fromkeys(summary))
            record.update(experiment=experiment_dir.name, run_name=run_dir.name,
                          path=str(run_dir))
            meta = read_json_or_none(run_dir / META_FILE)
            meta = meta if isinstance(meta, dict) else {}
            record.update({key: meta.get(key) for key in META_COLUMNS})
            if config:
                settings = config_columns(run_dir / CONFIG_FILE)
                config_keys.update(dict.fromkeys(settings))
                record.update(settings)
            failed = run_dir / FAILED_FILE
            if complete:
                record["error"] = None
            elif failed.is_file():
                record.update(status="failed", error=_failure_line(failed))
            else:
                record.update(status="incomplete", error=None)
            records.append(record)
    columns = BASE_COLUMNS + sorted(summary_keys.keys() - set(BASE_COLUMNS)) + sorted(config_keys)
    if include_failed:
        columns.append("error")
    frame = pd.DataFrame.from_records(records, columns=columns)
    if frame.empty:
        return frame
    return frame.sort_values(["experiment", "run_name"], kind="stable").reset_index(drop=True)


def _subdirs(path: Path) -> list[Path]:
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((Path(entry.path) for entry in entries
                   if entry.is_dir() and not entry.name.startswith(".")), key=lambda p: p.name)


def _failure_line(path: Path) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    kind = next((line[6:] for line in lines if line.startswith("type: ")), "")
    message = next((line[9:] for line in lines if line.startswith("message: ")), "")
    return f"{kind}: {message}" if kind else (lines[0] if lines else None)
