"""Training checkpoints and the cache of trained models.

A checkpoint is one torch file (readable with ``weights_only=True``) that carries everything needed
to use or resume a run: the model, data and training configs, the seed, the step, the model,
optimizer and RNG states, the training curve and the final accuracies.

The cache file name is a hash of everything that determines the training trajectory except the
number of steps (the learning rate is constant after warm-up, so a run to 20k steps is a prefix of a
run to 60k and the same file is simply continued):

    <checkpoint_dir>/<family>-seed<seed>-<hash12>.pt

Runtime knobs (torch threads, eval and save intervals) are not in the hash: a sweep must not
retrain because of them. The thread count can change the last float bits of the updates (and Adam
amplifies such differences in parameters with near-zero gradients), so a trajectory is reproduced
bit for bit only at the same thread count.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from interbasis.results.store import file_mode

Result = TypeVar("Result")

CHECKPOINT_FORMAT = "interbasis.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used as asked (unreadable, past the requested step, ...)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was made with a different configuration than the one it is loaded into."""


def trajectory_hash(trajectory: dict) -> str:
    """12 hex digits identifying a training trajectory (a JSON-serialisable dict)."""
    canonical = json.dumps(trajectory, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def checkpoint_path(checkpoint_dir: str | os.PathLike, family: str, seed: int,
                    trajectory: dict) -> Path:
    """Where the cache keeps the run identified by ``trajectory``."""
    return Path(checkpoint_dir) / f"{family}-seed{seed}-{trajectory_hash(trajectory)}.pt"


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write ``checkpoint`` atomically: a temporary file in the same folder, then ``os.replace``.

    A run killed mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **checkpoint}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, file_mode())  # mkstemp: owner-only; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an interbasis checkpoint")
    if checkpoint["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {checkpoint['version']}; "
                              f"this interbasis reads version {CHECKPOINT_VERSION}")
    return checkpoint


def check_config_matches(saved: dict, expected: dict, what: str, path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointMismatchError` naming every field where ``saved`` != ``expected``."""
    fields = sorted(set(saved) | set(expected))
    differences = [
        f"{name}={saved.get(name, '<missing>')!r} (asked: {expected.get(name, '<missing>')!r})"
        for name in fields
        if _plain(saved.get(name)) != _plain(expected.get(name))
    ]
    if differences:
        raise CheckpointMismatchError(
            f"checkpoint {path} has a different {what} config: {', '.join(differences)}"
        )


def _plain(value: object) -> object:
    """Tuples and lists compare equal (configs round-trip through JSON-like storage)."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def load_resume_or_train(path: Path, progress: str, target: int, trajectory: dict,
                         train: Callable[[dict | None], Result], loaded: Callable[[dict], Result],
                         log: Callable[[str], None] | None = print) -> Result:
    """The cache protocol every family shares, for the run whose cache entry is ``path``.

    No entry: ``train(None)``. An entry whose ``checkpoint[progress]`` (step, epoch) is short of
    ``target``: ``train(checkpoint)`` resumes it. One exactly at it: ``loaded(checkpoint)``,
    without training. One past it raises :class:`CheckpointError` (the cache keeps only the
    latest step).

    An entry that is already at ``target`` is loaded without a lock (checkpoints are replaced
    atomically, so a reader never sees half a file). Otherwise the entry's lock is taken first:
    two jobs that need the same uncached model train it once, the second waiting (with one line
    naming the first) and then loading what the first saved.
    """
    checkpoint = _read_if_done(path, progress, target)
    if checkpoint is not None:
        check_config_matches(checkpoint["trajectory"], trajectory, "training", path)
        return loaded(checkpoint)
    from interbasis.locking import OwnedLock

    lock = OwnedLock(path, what="model cache entry (training it)")
    lock.acquire(wait=True)
    try:
        if not path.exists():
            return train(None)
        checkpoint = load_checkpoint(path)
        done = checkpoint[progress]
        if done > target:
            raise CheckpointError(
                f"checkpoint {path} is at {progress} {done}, past the {target} {progress}s asked "
                f"for; ask for at least that many {progress}s or use another checkpoint dir")
        if done < target:
            if log:
                log(f"resuming {path} from {progress} {done}")
            return train(checkpoint)
        check_config_matches(checkpoint["trajectory"], trajectory, "training", path)
        return loaded(checkpoint)
    finally:
        lock.release()


def _read_if_done(path: Path, progress: str, target: int) -> dict | None:
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path)
    return checkpoint if checkpoint[progress] == target else None
