"""Ctrl-C and SIGTERM (SLURM preemption, ``kill``) as one exception a run can record.

Inside :func:`stop_on_signals` the first SIGINT or SIGTERM raises :class:`Interrupted` in the main
thread wherever it is; the run then writes ``interrupted`` and its end time into meta.json, leaves
its directory incomplete (never FAILED: nothing went wrong with the config or the code) and the
entry point prints one line and exits ``128 + signal`` (130 for SIGINT, 143 for SIGTERM). A second
signal during that clean-up is ignored, so the record is always written.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A run stopped by a signal (a BaseException, like KeyboardInterrupt: no handler for
    ``Exception`` may swallow it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {self.name}")


def _raise(signum: int, frame: object) -> None:
    for sig in SIGNALS:  # the clean-up that follows must not be cut short
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` for the duration (main thread only;
    elsewhere, e.g. in a launcher's worker thread, the default handling stays)."""
    try:
        previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
