"""What the site reads from the results store: runs with their config, summary and graph file.

Summaries and metadata come from ``load_runs`` / ``RunDirectory``; the config is the run's
``config.yaml`` (the store has no config reader, so ``read_config`` here is the one place that
parses it for the site). Graphs are read with ``interbasis.basis.types.load_graph`` only when a
page needs one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from interbasis.results import RunDirectory, load_runs

# Config keys that say where or how a run reported, never what it computed: not sweep axes.
IGNORED_CONFIG_PREFIXES = ("paths.", "logger.", "hydra.", "progress", "threads", "rerun",
                           "fail_fast", "experiment_name", "data.path", "data.root",
                           "data.dump_kjv")
METHOD_ORDER = ("lib", "pca", "neuron", "ngf", "random")


@dataclass
class Run:
    """One run folder as the site sees it."""

    experiment: str
    name: str
    path: Path
    status: str  # "complete", "failed" or "incomplete"
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flattened: "model.family" -> value
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def method(self) -> str | None:
        value = self.summary.get("method", self.config.get("method.name"))
        return None if value is None else str(value)

    @property
    def seed(self) -> Any:
        return self.summary.get("seed", self.config.get("seed"))

    @property
    def family(self) -> str | None:
        value = self.config.get("model.family", self.summary.get("model"))
        return None if value is None else str(value)

    @property
    def node_layers(self) -> list[str]:
        layers = self.config.get("model.node_layers")
        return [str(name) for name in layers] if isinstance(layers, list) else []

    @property
    def graph_file(self) -> Path | None:
        """``graph_<method>.pt`` when present, else the first ``graph_*.pt`` of the run."""
        preferred = self.path / f"graph_{self.method}.pt"
        if preferred.is_file():
            return preferred
        others = sorted(self.path.glob("graph_*.pt"))
        return others[0] if others else None

    @property
    def compare_key(self) -> str:
        """The run name without its method: runs sharing it differ only in their basis."""
        parts = [part for part in self.name.split(",") if not part.startswith("method=")]
        return ",".join(parts) or "default"

    @property
    def layer_keys(self) -> set[str]:
        """Node layer and transition names: the suffixes of per-layer summary keys."""
        names = set(self.node_layers)
        layers = self.node_layers
        names.update(f"{a}->{b}" for a, b in zip(layers, layers[1:]))
        return names


def read_config(run_path: Path) -> dict[str, Any]:
    """The run's ``config.yaml`` as a nested dict; empty when the file is missing or unreadable."""
    try:
        loaded = yaml.safe_load((Path(run_path) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"family": "x"}}`` -> ``{"model.family": "x"}`` (lists are kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_store(results: Path) -> list[Run]:
    """Every run folder under ``<results>/runs`` (complete ones with their summary)."""
    frame = load_runs(Path(results) / "runs", include_failed=True)
    runs = []
    for row in frame.itertuples(index=False):
        directory = RunDirectory(row.path)
        complete = row.status == "complete"
        runs.append(Run(
            experiment=row.experiment, name=row.run_name, path=Path(row.path), status=row.status,
            summary=directory.read_summary() if complete else {},
            config=flatten(read_config(directory.path)), meta=directory.read_meta(),
            error=None if complete else getattr(row, "error", None)))
    return runs


def by_experiment(runs: list[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.experiment, []).append(run)
    return grouped


def sweep_axes(runs: list[Run]) -> dict[str, list[Any]]:
    """Config keys with two or more distinct values among the runs that set them, sorted.

    A run lacking a key (e.g. a failed run whose config was cut short) does not make it an axis.
    """
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.config))
    axes = {}
    for key in keys:
        if key.startswith(IGNORED_CONFIG_PREFIXES):
            continue
        values = {_hashable(run.config[key]) for run in runs if key in run.config}
        if len(values) > 1:
            axes[key] = sorted(values, key=_sort_key)
    return axes


def run_metric_keys(runs: list[Run]) -> list[str]:
    """Run-level numeric summary keys (not per layer, not timings) for the index table."""
    keys: dict[str, None] = {}
    for run in runs:
        suffixes = run.layer_keys
        for key, value in run.summary.items():
            if key in ("seed", "status", "train/steps_trained_now") or key.startswith("time/"):
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if key.rsplit("/", 1)[-1] in suffixes:
                continue
            keys[key] = None
    return sorted(keys)


def compare_groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Complete runs sharing everything but the method, where at least two methods are present."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if run.status == "complete" and run.method is not None:
            groups.setdefault(run.compare_key, []).append(run)
    kept = {}
    for key, members in groups.items():
        if len({run.method for run in members}) >= 2:
            kept[key] = sorted(members, key=lambda run: method_rank(run.method))
    return kept


def compared_method(run: Run) -> str:
    """The method of a run in a compare group (compare_groups keeps only runs that name one)."""
    method = run.method
    if method is None:
        raise ValueError(f"{run.experiment}/{run.name}: a compared run names no method")
    return method


def method_rank(method: str | None) -> tuple[int, str]:
    name = method or ""
    return (METHOD_ORDER.index(name) if name in METHOD_ORDER else len(METHOD_ORDER), name)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        return repr(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))
