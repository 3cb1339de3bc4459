"""One record per multirun job in ``<hydra.sweep.dir>/.interbasis-jobs/``, and the sweep's summary.

A job writes ``<num>.json`` as ``running`` when it starts and overwrites it with its outcome
(``complete``, ``skipped``, ``failed``, ``cancelled``, ``busy``: another process holds the run
directory, or ``interrupted``) when it ends, so a job whose process died
(SIGKILL, a SLURM time limit) is still listed, as "did not finish". ``fail_fast`` drops a ``STOP``
file that the remaining jobs see before they start.

The :class:`SweepReport` Hydra callback clears the folder when a multirun starts and prints the
summary when it ends; it exits with status 1 when any job failed, was cancelled or did not finish.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from interbasis.results import atomic_write_text, utc_now

JOBS_DIR = ".interbasis-jobs"
STOP_FILE = "STOP"
STATUSES = ("running", "complete", "skipped", "failed", "cancelled", "busy", "interrupted")
# How each outcome reads in the summary's first line, in this order.
_COUNTED = {"complete": "ran", "skipped": "skipped (already complete)", "failed": "failed",
            "cancelled": "cancelled (fail_fast)", "busy": "busy (another process holds the run)",
            "interrupted": "interrupted", "running": "did not finish"}


def jobs_dir(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / JOBS_DIR


def record_job(sweep_dir: str | Path, job_num: int, overrides: list[str], status: str,
               run_dir: str | Path | None = None, error: str | None = None) -> Path:
    """Write (or overwrite) the record of job ``job_num``; atomic, so readers never see half."""
    if status not in STATUSES:
        raise ValueError(f"job status must be one of {STATUSES}, got {status!r}")
    record = {"job": job_num, "overrides": list(overrides), "status": status,
              "run_dir": None if run_dir is None else str(run_dir), "error": error,
              "time": utc_now()}
    path = jobs_dir(sweep_dir) / f"{job_num}.json"
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def read_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The job records of a sweep, by job number (unreadable files are skipped)."""
    records = []
    for path in jobs_dir(sweep_dir).glob("*.json"):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda record: record.get("job", -1))


def request_stop(sweep_dir: str | Path) -> None:
    """Ask the jobs that have not started yet to stand down (``fail_fast``)."""
    atomic_write_text(jobs_dir(sweep_dir) / STOP_FILE, utc_now() + "\n")


def stop_requested(sweep_dir: str | Path) -> bool:
    return (jobs_dir(sweep_dir) / STOP_FILE).is_file()


def summary_lines(jobs: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """The sweep summary (one count line, then one line per job that needs attention) and
    whether every job ran or was skipped."""
    counts = Counter(job.get("status") for job in jobs)
    parts = [f"{counts[status]} {label}" for status, label in _COUNTED.items()
             if counts[status] or status in ("complete", "skipped", "failed")]
    lines = [f"sweep: {len(jobs)} jobs: " + ", ".join(parts)]
    for job in jobs:
        status = job.get("status")
        if status in ("complete", "skipped"):
            continue
        overrides = " ".join(job.get("overrides") or []) or "(no overrides)"
        where = f" [{job['run_dir']}]" if job.get("run_dir") else ""
        reason = f": {job['error']}" if job.get("error") else ""
        label = _COUNTED.get(status, status) if isinstance(status, str) else status
        lines.append(f"{label}: {overrides}{where}{reason}")
    ok = all(job.get("status") in ("complete", "skipped") for job in jobs)
    return lines, ok


class SweepReport(Callback):
    """Hydra callback: a clean job folder at the start of a multirun, the summary at its end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A fixed hydra.sweep.dir is reused across invocations: old records would be counted.
        shutil.rmtree(jobs_dir(config.hydra.sweep.dir), ignore_errors=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        lines, ok = summary_lines(read_jobs(config.hydra.sweep.dir))
        print("\n".join(lines), file=sys.stdout if ok else sys.stderr, flush=True)
        if not ok:
            # SystemExit passes through Hydra's callback wrapper (it only catches Exception).
            sys.exit(1)
