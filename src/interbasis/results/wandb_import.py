"""Import runs that live in W&B into the results store, so figures can read them like local runs.

    python -m interbasis.results import-wandb ENTITY/PROJECT [--results results] [--force]

Each finished W&B run becomes ``<results>/runs/<experiment>/<run_name>/`` as the pipeline would
have written it: ``config.yaml`` (the run's config), ``meta.json`` (the W&B id and path, times,
``"imported_from": "wandb"``), ``curves.csv`` (from the ``curves/table`` the tracker logs, when the
run has it) and ``summary.json`` last (the scalar summary; W&B's own ``_`` keys and media left out).
Graph files and analysis tables are not logged to W&B, so figures that need them say so.

The experiment is the config's ``experiment_name`` (else the W&B group); the run name is what the
tracker used after ``<experiment>/`` (else one built from method and seed, else the W&B id).
Runs that are not finished, or not made by interbasis, are skipped with one line each; an existing
complete local run is kept unless ``--force``.

:func:`import_runs` takes any iterable of objects shaped like ``wandb.Api().runs(path)`` items
(``id``, ``name``, ``group``, ``state``, ``config``, ``summary``, ``created_at``, ``path``,
``file(name).download(root=..., replace=True)``), so it is tested without a network.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from interbasis.results.meta import utc_now
from interbasis.results.store import CURVE_COLUMNS, RunDirectory

CURVES_KEY = "curves/table"


class ImportSkipped(Exception):
    """A W&B run that is not imported (the message says why)."""


def _summary_dict(run: Any) -> dict[str, Any]:
    summary = run.summary
    raw = getattr(summary, "_json_dict", None)  # the API's summary object keeps its JSON here
    return dict(raw if isinstance(raw, Mapping) else summary)


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without W&B's own keys; ``{"value": v}`` wrappers (raw API JSON) unwrapped."""
    plain = {}
    for key, value in config.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping) and set(value) <= {"value", "desc"} and "value" in value:
            value = value["value"]
        plain[str(key)] = value
    return plain


def scalar_summary(summary: Mapping[str, Any]) -> dict[str, str | bool | int | float]:
    """The metrics a run's summary.json holds: scalars only, W&B internals and media left out."""
    clean = {}
    for key, value in summary.items():
        if key.startswith("_") or key.startswith("curves/") or key == "status":
            continue
        if isinstance(value, bool | int | float | str):
            clean[key] = value
        elif value is None:
            clean[key] = math.nan
    return clean


def run_location(run: Any, config: Mapping[str, Any]) -> tuple[str, str]:
    """(experiment, run_name) of a W&B run made by interbasis."""
    experiment = config.get("experiment_name") or getattr(run, "group", None)
    if not experiment:
        raise ImportSkipped("no experiment_name in its config and no W&B group")
    name = str(getattr(run, "name", "") or "")
    prefix = f"{experiment}/"
    if name.startswith(prefix) and len(name) > len(prefix):
        return experiment, name[len(prefix):]
    method = (config.get("method") or {}).get("name") if isinstance(config.get("method"),
                                                                     Mapping) else None
    if method is not None and "seed" in config:
        return experiment, f"method={method},seed={config['seed']}"
    return experiment, str(run.id)


def curves_from_table(run: Any, summary: Mapping[str, Any]) -> pd.DataFrame | None:
    """The run's logged curves table as a curves frame, or None when it logged none."""
    entry = summary.get(CURVES_KEY)
    if not isinstance(entry, Mapping) or "path" not in entry:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        handle = run.file(entry["path"]).download(root=tmp, replace=True)
        with handle:
            table = json.load(handle)
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    missing = [c for c in CURVE_COLUMNS if c not in frame]
    if missing:
        raise ImportSkipped(f"its {CURVES_KEY} lacks columns {missing}")
    frame = frame[CURVE_COLUMNS].astype({"x": "int64", "score": "float64",
                                         "base_score": "float64", "delta": "float64"})
    return frame.astype({"layer": str})


def import_run(run: Any, results: Path, force: bool = False) -> RunDirectory:
    """Write one finished W&B run into the store; raises ImportSkipped with the reason."""
    state = getattr(run, "state", None)
    if state != "finished":
        raise ImportSkipped(f"state is {state!r}, not 'finished'")
    config = _plain_config(run.config)
    summary = _summary_dict(run)
    if "method" not in summary or "model" not in config:
        raise ImportSkipped("not an interbasis run (no method in its summary or model in its "
                            "config)")
    experiment, run_name = run_location(run, config)
    run_dir = RunDirectory.for_run(results, experiment, run_name)
    if run_dir.is_complete and not force:
        raise ImportSkipped(f"{run_dir.path} already holds a complete run (--force replaces it)")
    curves = curves_from_table(run, summary)
    run_dir.clear()
    run_dir.write_config(config)
    path = getattr(run, "path", None)
    run_dir.write_meta({
        "wandb_run_id": run.id,
        "wandb_run_path": "/".join(path) if isinstance(path, list | tuple) else path,
        "start_time": getattr(run, "created_at", None),
        "imported_from": "wandb",
        "imported_at": utc_now(),
    })
    if curves is not None:
        run_dir.write_curves(curves)
    run_dir.write_summary(scalar_summary(summary))
    return run_dir


def import_runs(runs: Iterable[Any], results: str | Path, force: bool = False,
                log: Callable[[str], None] = print) -> list[RunDirectory]:
    """Import every run; one line per run (written or skipped). Returns the written runs."""
    written = []
    for run in runs:
        label = f"{getattr(run, 'name', None) or run.id} ({run.id})"
        try:
            run_dir = import_run(run, Path(results), force)
        except ImportSkipped as skipped:
            log(f"{label}: skipped: {skipped}")
            continue
        log(f"{label}: {run_dir.path}")
        written.append(run_dir)
    return written


def wandb_runs(path: str) -> Iterable[Any]:
    """The runs of ``ENTITY/PROJECT`` from the W&B API (needs a network and an API key)."""
    import wandb

    return wandb.Api().runs(path)


def cli(args: argparse.Namespace, fetch: Callable[[str], Iterable[Any]] = wandb_runs) -> int:
    if args.project.count("/") != 1 or not all(args.project.split("/")):
        print(f"give the project as ENTITY/PROJECT, got {args.project!r}", file=sys.stderr)
        return 2
    try:
        runs = list(fetch(args.project))
    except Exception as error:  # network, auth or unknown project: one line, not a traceback
        print(f"cannot list W&B runs of {args.project}: {type(error).__name__}: "
              f"{' '.join(str(error).split())[:300]}", file=sys.stderr)
        return 1
    written = import_runs(runs, args.results, args.force)
    print(f"imported {len(written)} of {len(runs)} W&B runs into {args.results}/runs")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``import-wandb`` to ``python -m interbasis.results``."""
    parser = subparsers.add_parser("import-wandb", help="write W&B runs into the results store",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("project", help="ENTITY/PROJECT")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="the results store (default: results)")
    parser.add_argument("--force", action="store_true",
                        help="replace complete local runs of the same name")
    parser.set_defaults(run=cli)
