"""The results store: one directory per run, written so that a crash never looks like a result.

Layout::

    <root>/runs/<experiment>/<run_name>/
        config.yaml     resolved config
        meta.json       git commit, versions, host, times, W&B run id (see ``meta.collect_meta``)
        curves.csv      node and edge ablation curves in long format (``curves_frame``)
        graph_<method>.pt, <name>.json, ...   arrays and other records
        summary.json    flat metrics + ``"status": "complete"``; written LAST, only on success
        FAILED          exception type, message and traceback of a failed run

Every file is written to a temporary file in the same folder and renamed with ``os.replace``, so a
reader sees either the old file or the new one. ``summary.json`` is the commit marker: a run counts
as complete exactly when it holds a parseable summary with ``"status": "complete"``, so a run killed
at any point before the end leaves no summary behind and ``load_runs`` skips it.

Usage (what the task wrapper does)::

    run_dir = RunDirectory.for_run("results", experiment, run_name_from_overrides(overrides))
    run_dir.clear()
    run_dir.write_config(cfg); run_dir.write_meta(collect_meta())
    try:
        ...  # compute; write_graph / write_curves / write_json along the way
        run_dir.update_meta(end_time=utc_now())
        run_dir.write_summary(summary)
    except BaseException as exc:
        run_dir.mark_failed(exc)
        raise
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import numbers
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve

CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.csv"
FAILED_FILE = "FAILED"
STATUS_COMPLETE = "complete"
# A rerun of a complete run is written to a hidden sibling and swapped in at the end; a failed
# rerun's record is kept beside the old result under the second name (see RunDirectory.staging).
STAGING_SUFFIX = ".rerun"
FAILED_RERUN_SUFFIX = ".rerun-failed"

# Hydra overrides that change where, how or how fast a run reports, never what it computes
# (``threads`` is a performance knob, kept out of the checkpoint hash for the same reason).
DEFAULT_IGNORED_OVERRIDES: tuple[str, ...] = (
    "logger", "logger.*", "paths", "paths.*", "hydra", "hydra.*", "progress", "progress.*",
    "threads",
)
MAX_RUN_NAME_LENGTH = 150
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._=,+@-]+")

CURVE_COLUMNS = ["kind", "layer", "x", "score", "base_score", "score_name", "delta"]
META_COLUMNS = ["git_commit", "wandb_run_id", "start_time", "end_time"]
BASE_COLUMNS = ["experiment", "run_name", "path", "status", *META_COLUMNS]


def run_name_from_overrides(
    overrides: Sequence[str], ignore: Iterable[str] = DEFAULT_IGNORED_OVERRIDES
) -> str:
    """A deterministic, filesystem-safe run name from Hydra task overrides.

    ``["seed=3", "method=lib"]`` -> ``"method=lib,seed=3"``. Overrides are sorted by key so the
    order on the command line does not matter; Hydra's ``+``/``++`` prefixes are dropped (they
    only say whether the key existed). Overrides whose key matches a glob in ``ignore`` are left
    out because they do not change the result (default: ``logger``, ``paths.*``, ``hydra.*``,
    ``progress``, ``threads``). Runs of characters outside ``[A-Za-z0-9._=,+@-]`` (``/``,
    spaces, brackets, quotes, ...) become ``_``. Names longer than 150 characters are cut and
    suffixed with a hash of the full name, so distinct long names stay distinct. No overrides ->
    ``"default"``.
    """
    ignore = tuple(ignore)
    kept: list[tuple[str, str]] = []
    for override in overrides:
        override = override.strip()
        key = override.split("=", 1)[0].lstrip("+")
        if not key or any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore):
            continue
        kept.append((key, override.lstrip("+")))
    if not kept:
        return "default"
    canonical = ",".join(text for _, text in sorted(kept))
    name = _UNSAFE_CHARS.sub("_", canonical)
    if len(name) > MAX_RUN_NAME_LENGTH:
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        name = f"{name[: MAX_RUN_NAME_LENGTH - len(digest) - 1]}-{digest}"
    return name


def curves_frame(
    node_curves: Sequence[NodeAblationCurve],
    edge_results: Sequence[EdgeAblationResult],
    edge_score_name: str | None = None,
) -> pd.DataFrame:
    """Ablation curves in long format, one row per evaluated point.

    Columns: ``kind`` ("node" or "edge"), ``layer`` (node layer or transition), ``x`` (k kept
    directions, or number of kept edges), ``score``, ``base_score``, ``score_name``, and ``delta``
    (the edge result's tolerance; NaN for node rows, kept because the bisections for different
    deltas of one transition evaluate different edge counts). Edge rows come from
    ``EdgeAblationResult.evaluations``, sorted by edge count. Edge results do not carry a score
    name: ``edge_score_name`` defaults to the node curves' name when they agree, else "score".
    """
    if edge_score_name is None:
        names = {curve.score_name for curve in node_curves}
        edge_score_name = names.pop() if len(names) == 1 else "score"
    rows: list[tuple] = []
    for curve in node_curves:
        if len(curve.ks) != len(curve.scores):
            raise ValueError(f"node curve {curve.layer!r} has {len(curve.ks)} ks and "
                             f"{len(curve.scores)} scores")
        rows.extend(("node", curve.layer, int(k), float(score), float(curve.base_score),
                     curve.score_name, math.nan) for k, score in zip(curve.ks, curve.scores))
    for result in edge_results:
        rows.extend(("edge", result.transition, int(n), float(score), float(result.base_score),
                     edge_score_name, float(result.delta))
                    for n, score in sorted(result.evaluations.items()))
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return frame.astype({"x": "int64", "score": "float64", "base_score": "float64",
                         "delta": "float64"})


class RunDirectory:
    """One run's folder in the store; every write is atomic and the summary is the commit marker."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def for_run(cls, root: str | os.PathLike, experiment: str, run_name: str) -> RunDirectory:
        """The directory ``<root>/runs/<experiment>/<run_name>``."""
        for part in (experiment, run_name):
            _check_file_name(part)
        return cls(Path(root) / "runs" / experiment / run_name)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # -- writing -------------------------------------------------------------------------------

    def write_config(self, cfg: Any) -> Path:
        """Write the resolved config (a dict or an OmegaConf container) to ``config.yaml``."""
        self._check_not_complete(CONFIG_FILE)
        if not isinstance(cfg, Mapping) or type(cfg).__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf  # only when handed an OmegaConf object

            cfg = OmegaConf.to_container(cfg, resolve=True)
        text = yaml.safe_dump(_plain(cfg), sort_keys=False, default_flow_style=False)
        return self._write_text(CONFIG_FILE, text)

    def write_meta(self, meta: Mapping[str, Any]) -> Path:
        """Write ``meta.json`` (replacing any earlier one).

        Metadata, unlike results, may still change after the summary (e.g. a later ``wandb sync``).
        """
        return self._write_text(META_FILE, _dumps(dict(meta)))

    def update_meta(self, **fields: Any) -> Path:
        """Merge ``fields`` into ``meta.json`` (e.g. ``end_time``, ``wandb_run_id``)."""
        return self.write_meta({**self.read_meta(), **fields})

    def write_curves(self, frame: pd.DataFrame) -> Path:
        """Write the long-format curves (see ``curves_frame``) to ``curves.csv``."""
        self._check_not_complete(CURVES_FILE)
        return self._write_text(CURVES_FILE, frame.to_csv(index=False))

    def write_graph(self, graph: Graph, name: str | None = None) -> Path:
        """Save ``graph`` as ``graph_<name>.pt`` (``name`` defaults to the graph's method).

        A name already given as ``graph_lib`` or ``graph_lib.pt`` is not prefixed twice.
        """
        name = graph.method if name is None else name
        name = name.removesuffix(".pt").removeprefix("graph_")
        _check_file_name(name)
        path = self.path / f"graph_{name}.pt"
        self._check_not_complete(path.name)
        graph.save(path)  # Graph.save is itself atomic
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        """Write any JSON-serialisable ``obj`` to ``<name>.json`` (not the summary or meta)."""
        file_name = name if name.endswith(".json") else f"{name}.json"
        _check_file_name(file_name)
        if file_name in (SUMMARY_FILE, META_FILE):
            raise ValueError(f"{file_name} is written by write_summary / write_meta only")
        self._check_not_complete(file_name)
        return self._write_text(file_name, _dumps(obj))

    def write_table(self, name: str, frame: pd.DataFrame) -> Path:
        """Write a family's analysis table (e.g. Fourier purity per feature) to ``<name>.csv``."""
        file_name = name if name.endswith(".csv") else f"{name}.csv"
        _check_file_name(file_name)
        if file_name == CURVES_FILE:
            raise ValueError(f"{CURVES_FILE} is written by write_curves only")
        self._check_not_complete(file_name)
        return self._write_text(file_name, frame.to_csv(index=False))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """Write the flat metrics as ``summary.json`` with ``"status": "complete"``: call it LAST.

        Values must be str, bool, int or float (NaN and inf allowed; numpy scalars are converted).
        A stale ``FAILED`` is removed first, so a directory never holds both. Once it is written,
        writing config, curves, graphs or other JSON raises until ``clear()``; meta may change.
        """
        clean = validate_summary(summary)
        clean["status"] = STATUS_COMPLETE
        (self.path / FAILED_FILE).unlink(missing_ok=True)
        return self._write_text(SUMMARY_FILE, _dumps(clean))

    def mark_failed(self, exc: BaseException) -> Path:
        """Record a failure: drop any stale summary, write ``FAILED`` with the full traceback."""
        (self.path / SUMMARY_FILE).unlink(missing_ok=True)
        message = str(exc).strip()
        text = (
            f"type: {type(exc).__module__}.{type(exc).__qualname__}\n"
            f"message: {message}\n\n"
            + "".join(traceback.format_exception(exc))
        )
        return self._write_text(FAILED_FILE, text)

    def clear(self) -> None:
        """Remove the store's files from an earlier attempt (the summary first); keep subfolders.

        Subfolders (e.g. W&B's ``wandb/``) are left alone: they belong to other tools.
        """
        if not self.path.is_dir():
            return
        (self.path / SUMMARY_FILE).unlink(missing_ok=True)
        for entry in self.path.iterdir():
            if entry.is_file() and _is_store_file(entry.name):
                entry.unlink(missing_ok=True)

    # -- ownership and atomic reruns -----------------------------------------------------------

    def lock(self):
        """The run's :class:`~interbasis.locking.OwnedLock` (``with run_dir.lock(): ...``)."""
        from interbasis.locking import OwnedLock  # locking imports this module

        return OwnedLock(self.path, what="run directory")

    def staging(self) -> RunDirectory:
        """Where a rerun of this complete run is written: ``.<name>.rerun`` beside it (hidden,
        so ``load_runs`` and the figures never see a half-done attempt)."""
        return RunDirectory(self.path.with_name(f".{self.path.name}{STAGING_SUFFIX}"))

    def replace_with(self, staged: RunDirectory) -> None:
        """Swap the finished ``staged`` attempt in for this directory.

        Two renames in one folder: the old result is moved to ``.<name>.old`` and kept until the
        new one is in place, so a kill between them leaves both on disk and :meth:`recover` (run
        under the lock at the next start) puts the old one back.
        """
        old = self._old_path()
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            os.rename(self.path, old)
        os.rename(staged.path, self.path)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.path.with_name(self.path.name + FAILED_RERUN_SUFFIX),
                      ignore_errors=True)

    def keep_failed_attempt(self, staged: RunDirectory) -> RunDirectory:
        """Move a failed rerun from staging to ``<name>.rerun-failed`` beside the old result."""
        failed = RunDirectory(self.path.with_name(self.path.name + FAILED_RERUN_SUFFIX))
        shutil.rmtree(failed.path, ignore_errors=True)
        os.rename(staged.path, failed.path)
        return failed

    def recover(self) -> None:
        """Undo a swap that was killed halfway and drop a killed rerun's staging folder."""
        old = self._old_path()
        if old.is_dir():
            if self.path.exists():
                shutil.rmtree(old)  # the new attempt was already in place
            else:
                os.rename(old, self.path)
        shutil.rmtree(self.staging().path, ignore_errors=True)

    def _old_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.old")

    # -- reading -------------------------------------------------------------------------------

    @property
    def is_complete(self) -> bool:
        """True when summary.json exists, parses and says ``"status": "complete"``."""
        summary = read_json_or_none(self.path / SUMMARY_FILE)
        return isinstance(summary, dict) and summary.get("status") == STATUS_COMPLETE

    @property
    def status(self) -> str:
        """"complete", "failed", "incomplete" (started, or killed) or "missing"."""
        if self.is_complete:
            return STATUS_COMPLETE
        if (self.path / FAILED_FILE).is_file():
            return "failed"
        return "incomplete" if self.path.is_dir() else "missing"

    def read_summary(self) -> dict[str, Any]:
        """The summary dict (raises FileNotFoundError when the run is not complete)."""
        return _read_json(self.path / SUMMARY_FILE)

    def read_meta(self) -> dict[str, Any]:
        """The metadata dict; empty when no meta.json was written."""
        meta = read_json_or_none(self.path / META_FILE)
        return meta if isinstance(meta, dict) else {}

    def read_json(self, name: str) -> Any:
        """A file written by ``write_json``."""
        return _read_json(self.path / (name if name.endswith(".json") else f"{name}.json"))

    def read_table(self, name: str) -> pd.DataFrame:
        """A table written by ``write_table``."""
        return pd.read_csv(self.path / (name if name.endswith(".csv") else f"{name}.csv"))

    def read_curves(self) -> pd.DataFrame:
        """The curves written by ``write_curves``."""
        return load_curves(self.path)

    def _check_not_complete(self, name: str) -> None:
        # Enforces "summary last": results added after the summary would not be covered by it,
        # and results written over a stale summary would mix two attempts.
        if (self.path / SUMMARY_FILE).exists():
            raise RuntimeError(
                f"cannot write {name}: {self.path} already holds a summary (a finished run); "
                "write results before write_summary, or clear() the directory to rerun"
            )

    def _write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        atomic_write_text(path, text)
        return path


def validate_summary(summary: Mapping[str, Any]) -> dict[str, str | bool | int | float]:
    """A copy of ``summary`` as plain python scalars; ValueError naming every bad entry."""
    if not isinstance(summary, Mapping):
        raise ValueError(f"summary must be a flat dict, got {type(summary).__name__}")
    clean: dict[str, str | bool | int | float] = {}
    problems: list[str] = []
    for key, value in summary.items():
        if not isinstance(key, str):
            problems.append(f"key {key!r} is not a str")
        elif key == "status" and value != STATUS_COMPLETE:
            problems.append(f"'status' is set by write_summary (got {value!r})")
        elif isinstance(value, str | bool):
            clean[key] = value
        elif isinstance(value, numbers.Integral) and not _is_bool_like(value):
            clean[key] = int(value)
        elif isinstance(value, numbers.Real) and not _is_bool_like(value):
            clean[key] = float(value)
        elif _is_bool_like(value):
            clean[key] = bool(value)
        else:
            problems.append(f"{key!r} has a {type(value).__name__} value ({value!r:.60})")
    if problems:
        raise ValueError("summary must map str to str/bool/int/float: " + "; ".join(problems))
    return clean


def load_curves(run_path: str | os.PathLike) -> pd.DataFrame:
    """The long-format curves of one run (``curves.csv``), with layer names kept as strings."""
    path = Path(run_path)
    path = path if path.suffix == ".csv" else path / CURVES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no curves at {path}")
    # Layer names like "0" must stay strings, and only empty cells mean NaN (a layer may be
    # called "NA"); numeric columns are then converted explicitly.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("x", "score", "base_score", "delta"):
        if column in frame:
            frame[column] = frame[column].where(frame[column] != "", "nan").astype("float64")
    if "x" in frame and frame["x"].notna().all():
        frame["x"] = frame["x"].astype("int64")
    return frame


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide results from teammates
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data does
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask (0644 under 022)."""
    umask = os.umask(0)  # the only way to read it; set straight back
    os.umask(umask)
    return 0o666 & ~umask


def _dumps(obj: Any) -> str:
    # allow_nan: NaN metrics (e.g. modularity/q) are legitimate; python's json reads them back.
    return json.dumps(obj, indent=2, allow_nan=True, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _plain(obj: Any) -> Any:
    """Plain YAML-safe python: tuples become lists, Paths strings."""
    if isinstance(obj, Mapping):
        return {str(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _is_bool_like(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _check_file_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a usable file name")


def _is_store_file(name: str) -> bool:
    if name in (CONFIG_FILE, META_FILE, SUMMARY_FILE, CURVES_FILE, FAILED_FILE):
        return True
    if name.startswith(".") and name.endswith(".tmp"):  # leftovers of an interrupted write
        return True
    return name.endswith((".json", ".csv")) or (name.startswith("graph_") and name.endswith(".pt"))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_json_or_none(path: Path) -> Any:
    try:
        return _read_json(path)
    except (OSError, ValueError):  # missing, unreadable or half-written by a foreign tool
        return None
