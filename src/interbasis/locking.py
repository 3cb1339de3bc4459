"""Ownership of a path: one process at a time writes a run directory or trains a cached model.

:class:`OwnedLock` is a ``filelock.FileLock`` on a hidden file beside the guarded path
(``.<name>.lock``) plus a small JSON sidecar (``.<name>.lock.json``, written atomically once the
lock is held) naming the holder: pid, host and start time. The sidecar is what a second process
prints ("held by pid 4242 on node7 since 2026-01-31T12:00:00+00:00"); the lock itself is what
excludes.

Why ``FileLock`` (flock) and not ``SoftFileLock`` (a marker file): the kernel drops an flock when
its holder dies, however it dies (SIGKILL, OOM killer, a SLURM time limit), so no stale lock is ever
left to break. On NFS, Linux maps flock to NFS byte-range locks (NLM for v3, the protocol's own
locks for v4), which every client sees; a crashed node's locks go when its lease expires. A marker
file survives its holder's death, and a process on another host cannot tell whether that holder is
still alive, so every crash would need a person to delete files. filelock falls back to a marker
only on filesystems without flock at all; mounts with ``local_lock=flock`` or ``nolock`` make
locks host-local, which no library can fix (the sidecar still names the holder there).

A sidecar found when the lock is free means its holder died without releasing: the new holder says
so in one line and takes over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

log = logging.getLogger("interbasis")


class LockBusy(RuntimeError):
    """Another live process holds the lock; the message names it (one line)."""


class OwnedLock:
    """A lock on ``path`` (which need not exist) that records its holder."""

    def __init__(self, path: str | os.PathLike, what: str = "run directory") -> None:
        self.path = Path(path)
        self.what = what
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.info_path = self.path.with_name(f".{self.path.name}.lock.json")
        self._lock = FileLock(self.lock_path, timeout=0, thread_local=False)

    def holder(self) -> dict[str, Any]:
        """The sidecar's record of the holder (empty when none or unreadable)."""
        try:
            record = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def describe_holder(self) -> str:
        record = self.holder()
        if not record:
            return "another process (no holder record yet)"
        return (f"pid {record.get('pid')} on {record.get('host')} since "
                f"{record.get('start_time')}")

    def acquire(self, wait: bool = False) -> None:
        """Take the lock; without ``wait`` raise :class:`LockBusy` at once when it is held."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            busy = f"{self.path} is busy: {self.what} held by {self.describe_holder()}"
            if not wait:
                raise LockBusy(busy) from None
            log.warning("%s; waiting for it to finish", busy)
            self._lock.acquire(timeout=-1)
        stale = self.holder()
        if stale and not _is_us(stale):
            log.warning("taking over %s from pid %s on %s (since %s), which is gone", self.path,
                        stale.get("pid"), stale.get("host"), stale.get("start_time"))
        _write_atomically(self.info_path, json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(),
             "start_time": datetime.now(UTC).isoformat(timespec="seconds"),
             "path": str(self.path)}) + "\n")

    def release(self) -> None:
        # The sidecar goes first: a sidecar with no lock held means "its holder died".
        if self._lock.is_locked:
            self.info_path.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> OwnedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _is_us(record: dict[str, Any]) -> bool:
    return record.get("pid") == os.getpid() and record.get("host") == socket.gethostname()


def _write_atomically(path: Path, text: str) -> None:
    # Not results.store.atomic_write_text: this module stays importable without torch/pandas
    # (a lock is taken before a run imports its model family).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
