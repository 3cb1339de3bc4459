"""Sweeps: what a multirun records about its jobs, and the one summary printed at its end.

Every job of a Hydra multirun writes one small record (``journal.record_job``) into the sweep's
folder; the ``SweepReport`` callback (registered in ``conf/config.yaml``) reads them back when the
sweep ends, prints which runs ran, were skipped or failed, and exits non-zero when any failed.
Records are files, not Python state, because the joblib and submitit launchers run jobs in other
processes (or on other machines) than the one that prints the summary.
"""

from interbasis.sweeps.journal import (
    JOBS_DIR,
    SweepReport,
    read_jobs,
    record_job,
    request_stop,
    stop_requested,
    summary_lines,
)

__all__ = ["JOBS_DIR", "SweepReport", "read_jobs", "record_job", "request_stop",
           "stop_requested", "summary_lines"]
