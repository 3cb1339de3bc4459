"""Experiment tracking: a no-op ``Tracker`` and a ``WandbTracker`` that can never end a run.

W&B mirrors what the results store holds (config, summary, curves) for browsing; it is never the
only copy of a result, so any W&B failure is reported as one warning and the tracker turns into a
no-op for the rest of the run. ``wandb`` is imported inside the methods: importing this module (and
running with ``tracker=none``) costs nothing.

Usage::

    tracker = make_tracker("wandb", project="interbasis")   # online with an API key, else offline
    tracker.start(config, name=run_name, group=experiment, tags=["modadd", "lib", "seed=0"],
                  run_dir=run_dir.path, run_id=previous_id)  # run_id: continue that W&B run
    tracker.log_metrics({"train/loss": 0.1}, step=100)
    tracker.log_curves(curves); tracker.set_summary(summary)
    tracker.finish()                                           # safe to call again
"""

from __future__ import annotations

import contextlib
import netrc
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, get_args
from urllib.parse import urlparse

if TYPE_CHECKING:  # pandas only for hints: importing this module stays cheap
    import pandas as pd

TRACKER_KINDS = ("wandb", "offline", "none")
WandbMode = Literal["online", "offline", "disabled"]  # the modes wandb.init accepts here
WANDB_MODES: tuple[WandbMode, ...] = get_args(WandbMode)
DEFAULT_PROJECT = "interbasis"
# One line plot per layer is cheap for a model's handful of layers; past this many, the table
# alone is logged (each plot is its own table upload).
MAX_LINE_PLOTS = 32
_MAX_TAG_LENGTH = 64  # W&B rejects longer tags
_MAX_ERROR_LENGTH = 300


class Tracker:
    """The tracker interface; this base class does nothing (``tracker=none``)."""

    def start(self, config: Mapping[str, Any], name: str, group: str | None, tags: list[str],
              run_dir: Path, run_id: str | None = None) -> None:
        """Open a tracked run; ``run_id`` continues an earlier run with that id."""

    @property
    def run_id(self) -> str | None:
        """The tracked run's id (store it in meta.json to resume), None when not tracking."""
        return None

    @property
    def run_path(self) -> str | None:
        """Where the run lives: ``entity/project/id`` online, the run folder offline."""
        return None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalars (e.g. training loss) at ``step``."""

    def log_curves(self, frame: pd.DataFrame) -> None:
        """Log ablation curves in the long format of ``interbasis.results.curves_frame``."""

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        """Set the run's summary metrics (the flat dict of ``interbasis.metrics.summarize``)."""

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (non-zero ``exit_code`` marks it failed); safe to call more than once."""


class WandbTracker(Tracker):
    """Weights & Biases tracking in ``mode`` "online", "offline" or "disabled".

    W&B writes its files under ``dir`` when given, else under the ``run_dir`` passed to
    ``start`` (``<dir>/wandb/...``), never into the working directory.
    """

    def __init__(self, mode: str = "offline", project: str = DEFAULT_PROJECT,
                 entity: str | None = None, dir: str | os.PathLike | None = None) -> None:
        if not _is_wandb_mode(mode):
            raise ValueError(f"W&B mode must be one of {WANDB_MODES}, got {mode!r}")
        self.mode: WandbMode = mode
        self.project = project
        self.entity = entity
        self.dir = None if dir is None else Path(dir)
        self._run: Any = None
        self._run_id: str | None = None
        self._run_path: str | None = None

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def run_path(self) -> str | None:
        return self._run_path

    @property
    def active(self) -> bool:
        """True while a W&B run is open and no W&B call has failed."""
        return self._run is not None

    def start(self, config: Mapping[str, Any], name: str, group: str | None, tags: list[str],
              run_dir: Path, run_id: str | None = None) -> None:
        if self._run is not None:
            self.finish()
        wandb_dir = Path(run_dir) if self.dir is None else self.dir
        try:
            import wandb

            wandb_dir.mkdir(parents=True, exist_ok=True)
            run = wandb.init(
                project=self.project, entity=self.entity, dir=str(wandb_dir), mode=self.mode,
                name=name, group=group, tags=[str(tag)[:_MAX_TAG_LENGTH] for tag in tags],
                id=run_id, resume="allow" if run_id else None,
            )
            # Set after init with allow_val_change: a resumed run may carry an older config.
            run.config.update(dict(config), allow_val_change=True)
        except Exception as exc:
            self._degrade("wandb.init", exc)
            return
        self._run = run
        self._run_id = run.id
        self._run_path = _run_path(run, self.mode)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self._run is None:
            return
        try:
            self._run.log(dict(metrics), step=step)
        except Exception as exc:
            self._degrade("log_metrics", exc)

    def log_curves(self, frame: pd.DataFrame) -> None:
        """Log the curves as one ``wandb.Table`` plus a line plot per (kind, layer) when few."""
        if self._run is None or frame.empty:
            return
        try:
            import wandb

            logged: dict[str, Any] = {"curves/table": wandb.Table(dataframe=frame)}
            groups = list(frame.groupby(["kind", "layer"], sort=True))
            if len(groups) <= MAX_LINE_PLOTS:
                for (kind, layer), rows in groups:
                    rows = rows.sort_values("x")
                    table = wandb.Table(dataframe=rows[["x", "score"]].reset_index(drop=True))
                    score_name = str(rows["score_name"].iloc[0])
                    logged[f"curves/{kind}/{layer}"] = wandb.plot.line(
                        table, "x", "score", title=f"{kind} ablation {layer} ({score_name})"
                    )
            self._run.log(logged)
        except Exception as exc:
            self._degrade("log_curves", exc)

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        if self._run is None:
            return
        try:
            self._run.summary.update(dict(summary))
        except Exception as exc:
            self._degrade("set_summary", exc)

    def finish(self, exit_code: int = 0) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:
            _warn("finish", exc, stacklevel=3)

    def _degrade(self, what: str, exc: Exception) -> None:
        """Warn once and become a no-op; close a half-working run without letting it raise."""
        _warn(f"{what} failed", exc, stacklevel=4)
        run, self._run = self._run, None
        if run is not None:
            # Already reported W&B trouble: a second warning would add nothing.
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)


def make_tracker(kind: str, **kwargs: Any) -> Tracker:
    """The tracker for ``kind``: "wandb", "offline" or "none" (``kwargs`` go to WandbTracker).

    "wandb" runs online when an API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry
    for the W&B host) and offline otherwise, with a one-line warning; an explicit
    ``WANDB_MODE=offline`` or ``disabled`` in the environment wins, so a test or a cluster job can
    keep any run off the network. "offline" always writes an offline run (``wandb sync`` later).
    """
    if kind == "none":
        return Tracker()
    if kind == "offline":
        return WandbTracker(**{**kwargs, "mode": "offline"})
    if kind == "wandb":
        env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
        if env_mode in ("offline", "dryrun", "disabled"):
            mode = "disabled" if env_mode == "disabled" else "offline"
        elif wandb_api_key_configured():
            mode = "online"
        else:
            warnings.warn("W&B: no API key configured (WANDB_API_KEY or ~/.netrc); logging "
                          "offline, upload later with `wandb sync`", stacklevel=2)
            mode = "offline"
        return WandbTracker(**{**kwargs, "mode": mode})
    raise ValueError(f"tracker kind must be one of {TRACKER_KINDS}, got {kind!r}")


def wandb_api_key_configured() -> bool:
    """True when W&B could log in without asking: ``WANDB_API_KEY`` or a netrc entry."""
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc")).expanduser()
    try:
        entry = netrc.netrc(str(netrc_path)).authenticators(host or "api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def _is_wandb_mode(mode: str) -> TypeGuard[WandbMode]:
    return mode in WANDB_MODES


def _run_path(run: Any, mode: str) -> str | None:
    try:
        if mode == "offline":
            return str(run.settings.sync_dir)  # the folder `wandb sync` uploads
        return str(run.path)
    except Exception:
        return None


def _warn(what: str, exc: BaseException, stacklevel: int) -> None:
    # One line whatever the exception text: W&B errors can carry multi-line server responses.
    error = " ".join(f"{type(exc).__name__}: {exc}".split())[:_MAX_ERROR_LENGTH]
    # stacklevel: point at the pipeline line that called the tracker method, not at this helper.
    warnings.warn(f"W&B: {what}: {error}; continuing without W&B", RuntimeWarning,
                  stacklevel=stacklevel)
