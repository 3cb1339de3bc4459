"""The time part of a training log line: elapsed time and an estimate of what is left."""

from __future__ import annotations

import time


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def time_left(done: int, total: int, first: int, started: float) -> str:
    """``"01:23 elapsed, ~02:10 left"``: units ``first..done`` of ``total`` took the time since
    ``started`` (a ``time.perf_counter()``), and the rest is assumed to go at the same rate."""
    elapsed = time.perf_counter() - started
    if done <= first:
        return f"{_clock(elapsed)} elapsed"
    left = (total - done) * elapsed / (done - first)
    return f"{_clock(elapsed)} elapsed, ~{_clock(max(left, 0.0))} left"
