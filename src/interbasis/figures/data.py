"""What figures read from ``results/`` and how they say what is missing.

Figures read only the results store: ``load_runs`` (summaries), ``load_curves``, the graph files and
the analysis files a run stores (``fourier.csv``, ``modularity.json``). When something is missing a
figure raises :class:`MissingResults` with one line naming the files and the command that writes
them; the figures command prints that line and goes on with the next figure.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path

import pandas as pd
import yaml

from interbasis.results import load_curves, load_runs

PAPER_EXPERIMENT = "modadd_paper"
SWEEP_COMMAND = "python -m interbasis.run -m sweep=paper_modadd"
BACKFILL_COMMAND = "python -m interbasis.analysis.backfill results/runs/{experiment}"


# The experiments the figure being drawn may read (None: all); set by the figures command from
# the figure's declared list, so a user's own runs never enter a committed figure.
_ONLY: ContextVar[tuple[str, ...] | None] = ContextVar("figure_experiments", default=None)


class MissingResults(Exception):
    """The results a figure needs are not in the store (the message is the one line to print)."""


@contextlib.contextmanager
def only_experiments(experiments: Iterable[str] | None) -> Iterator[None]:
    """Within the block, :func:`runs` sees only ``experiments`` (None: every experiment)."""
    token = _ONLY.set(None if experiments is None else tuple(experiments))
    try:
        yield
    finally:
        _ONLY.reset(token)


def allowed(experiment: str) -> bool:
    only = _ONLY.get()
    return only is None or experiment in only


def runs(results: Path) -> pd.DataFrame:
    """``load_runs`` of ``<results>/runs``, limited to the experiments the figure draws."""
    frame = load_runs(results / "runs")
    if frame.empty or _ONLY.get() is None:
        return frame
    return frame[[allowed(name) for name in frame["experiment"]]].reset_index(drop=True)


def sweep_command(experiment: str) -> str:
    if experiment == PAPER_EXPERIMENT:
        return SWEEP_COMMAND
    return f"python -m interbasis.run -m experiment={experiment} method=lib,pca seed=0,1,2,3,4"


def method_runs(results: Path, experiment: str, methods: tuple[str, ...] = ("lib", "pca")
                ) -> pd.DataFrame:
    """Complete runs of ``experiment`` for each of ``methods`` (at least one each), by seed."""
    found = runs(results)
    if not found.empty:
        found = found[found["experiment"] == experiment]
    missing = [m for m in methods
               if found.empty or "method" not in found or not (found["method"] == m).any()]
    if missing:
        raise MissingResults(
            f"no complete {'/'.join(missing)} runs in {results}/runs/{experiment}/; "
            f"`{sweep_command(experiment)}` writes them")
    found = found[found["method"].isin(methods)]
    return found.sort_values(["method", "seed"], kind="stable").reset_index(drop=True)


def node_layers(run_path: str | Path) -> list[str]:
    """The run's node layers in model order, from its config."""
    config = yaml.safe_load((Path(run_path) / "config.yaml").read_text(encoding="utf-8"))
    return list(config["model"]["node_layers"])


def curves(run_path: str | Path) -> pd.DataFrame:
    try:
        return load_curves(run_path)
    except FileNotFoundError:
        raise MissingResults(f"{run_path}/curves.csv is missing; rerun that run") from None


def run_file(run_path: str | Path, name: str, experiment: str) -> Path:
    """Path of an analysis file of a run, or MissingResults naming the backfill command."""
    path = Path(run_path) / name
    if not path.is_file():
        raise MissingResults(
            f"{path} is missing; `{BACKFILL_COMMAND.format(experiment=experiment)}` writes it "
            "for finished runs (new runs write it themselves)")
    return path


def fourier_table(run_path: str | Path, experiment: str) -> pd.DataFrame:
    return pd.read_csv(run_file(run_path, "fourier.csv", experiment))


def partition(run_path: str | Path, experiment: str, resolution: float) -> dict:
    """The stored Leiden partition of a run at ``resolution``."""
    path = run_file(run_path, "modularity.json", experiment)
    record = json.loads(path.read_text(encoding="utf-8"))
    for entry in record["partitions"]:
        if abs(entry["resolution"] - resolution) < 1e-12:
            return {**entry, "eps": record["eps"]}
    stored = [entry["resolution"] for entry in record["partitions"]]
    raise MissingResults(
        f"{path} holds resolutions {stored}, not {resolution}; `"
        f"{BACKFILL_COMMAND.format(experiment=experiment)} --force --resolutions 1 {resolution}`"
        " adds it")


def graph(run_path: str | Path, method: str):
    """The run's stored graph (the plain container reader; no basis computation)."""
    from interbasis.basis.types import load_graph  # torch only when a figure needs a graph

    path = Path(run_path) / f"graph_{method}.pt"
    if not path.is_file():
        raise MissingResults(f"{path} is missing; rerun that run")
    return load_graph(path)


AUTHORS_EXPERIMENT = "modadd_authors"  # our pipeline on the LIB authors' five models
AUTHORS_IMPORT_COMMAND = "python -m interbasis.results authors-import"


def authors_reference(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The authors' published numbers from the results store: (per method/seed/layer: rank,
    k_required, edges_required, in our layer names; their node-ablation curves, our names)."""
    from interbasis.results.authors import LAYERS, NODES_FILE, REFERENCE_DIR, load_reference

    folder = results / REFERENCE_DIR
    if not (folder / NODES_FILE).is_file():
        raise MissingResults(f"no authors' numbers in {folder}; `{AUTHORS_IMPORT_COMMAND}` "
                             "copies them there")
    curves = pd.read_csv(folder / NODES_FILE)
    curves["layer"] = curves["node_layer"].map(LAYERS)
    return load_reference(folder), curves


def optional_runs(results: Path, experiment: str, methods: tuple[str, ...]) -> pd.DataFrame:
    """Complete runs of ``experiment`` with one of ``methods``; empty when there are none."""
    try:
        return method_runs(results, experiment, methods=methods)
    except MissingResults:
        runs = load_runs(results / "runs")
        if runs.empty or "method" not in runs:
            return runs
        return runs[(runs["experiment"] == experiment) & runs["method"].isin(methods)]
