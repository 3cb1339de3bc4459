"""What a run records about where it ran: code version, library versions, machine and times.

``collect_meta()`` is written to ``meta.json`` at the start of a run; ``utc_now()`` gives the
``end_time`` that the task wrapper merges in at the end (``RunDirectory.update_meta``). Nothing here
may fail a run: a missing git, a tarball install or an odd CUDA set-up give ``None`` fields.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# Distribution names, not import names: importlib.metadata reads versions without importing the
# packages (importing wandb alone costs most of a second).
_DISTRIBUTIONS = {
    "torch": "torch",
    "numpy": "numpy",
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "wandb": "wandb",
    "pandas": "pandas",
    "interbasis": "interbasis",
}
_GIT_TIMEOUT_S = 5.0


def utc_now() -> str:
    """The current time as ISO 8601 in UTC, to the second (e.g. ``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def collect_meta() -> dict[str, Any]:
    """Metadata for ``meta.json``.

    Keys: ``git_commit`` and ``git_dirty`` of the repository the interbasis package lives in
    (both None when the package is not a tracked file of a git checkout), ``versions`` (python,
    torch, numpy, hydra, omegaconf, wandb, pandas, interbasis; None when not installed),
    ``device`` (the CUDA device name or "cpu"), ``hostname``, ``start_time`` (ISO UTC) and
    ``argv``. ``wandb_run_id`` and ``end_time`` are added later by the run.
    """
    commit, dirty = git_state(Path(__file__).resolve().parents[1])
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": library_versions(),
        "device": _device(),
        "hostname": _hostname(),
        "start_time": utc_now(),
        "argv": list(sys.argv),
    }


def library_versions() -> dict[str, str | None]:
    """Versions of python and the libraries that determine a result."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, distribution in _DISTRIBUTIONS.items():
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding ``package_dir``; (None, None) when there is none.

    The package's ``__init__.py`` must be tracked: an installed copy inside some unrelated
    repository (a virtualenv under a project folder) must not report that repository's commit.
    Untracked files count as dirty, since a new, uncommitted module changes what a run does.
    """
    tracked = _git(package_dir, "ls-files", "--error-unmatch", "__init__.py")
    commit = _git(package_dir, "rev-parse", "HEAD")
    if tracked is None or not commit:
        return None, None
    status = _git(package_dir, "status", "--porcelain")
    return commit, None if status is None else bool(status)


def _git(cwd: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, no folder, a hung filesystem
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception:  # a broken driver must not stop a CPU run from recording itself
        pass
    return "cpu"


def _hostname() -> str | None:
    try:
        return socket.gethostname()
    except OSError:
        return None
