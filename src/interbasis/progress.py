"""What a run says while it works: stage lines, and progress that also reads well in a log file.

On a terminal tqdm draws its bars. Off a terminal (nohup, SLURM, CI, a pipe) tqdm would either be
silent or fill the log with carriage-return redraws, so :func:`progress_bars` sends every tqdm bar
opened inside it to the ``interbasis`` logger instead, as one line at most every
:data:`INTERVAL_S` seconds per bar::

    12:03:04 edge ablations: 3/7, 02:10 elapsed, ~02:55 left

The code that opens the bars (the basis engine, the ablations) is not touched: it is asked for bars
(``progress=True``) while ``sys.stderr`` is an adapter that turns tqdm's redraws into log lines and
passes every other write (warnings) through unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("interbasis")

INTERVAL_S = 30.0
# tqdm's default line: "desc:  40%|####      | 2/5 [00:30<00:45,  15.00s/it]"
_BAR = re.compile(r"^(?:(?P<desc>.*?):\s*)?\d+%\|.*?\|\s*(?P<n>[\d.]+\w?)/(?P<total>[\d.]+\w?)"
                  r"\s*\[(?P<elapsed>[^<\]]+)<(?P<left>[^,\]]+)")


def setup_logging(level: int = logging.INFO) -> None:
    """One handler on the ``interbasis`` logger: ``HH:MM:SS message`` on stdout (idempotent).

    stdout, with the run's table and directory after it; stderr keeps the one line of an error.
    """
    if any(getattr(handler, "_interbasis", False) for handler in log.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler._interbasis = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False  # Hydra's root handler would print every line twice


def describe_bar(text: str) -> str:
    """A tqdm line as ``desc: n/total, elapsed elapsed, ~left left`` (other text unchanged)."""
    match = _BAR.match(text)
    if not match:
        return text
    desc = f"{match['desc']}: " if match["desc"] else ""
    left = match["left"].strip()
    estimate = "" if left == "?" else f", ~{left} left"
    return f"{desc}{match['n']}/{match['total']}, {match['elapsed'].strip()} elapsed{estimate}"


class _BarsToLog(io.TextIOBase):
    """A stderr stand-in: tqdm redraws (they start with a carriage return) become throttled log
    lines, one per bar description; anything else goes to the real stream."""

    def __init__(self, stream, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._last: dict[str, float] = {}
        self._after_bar = False
        self._latest: tuple[str, float] | None = None  # the last bar line and when it came
        self._logged = time.monotonic()

    def write(self, text: str) -> int:
        after_bar, self._after_bar = self._after_bar, text.startswith("\r")
        if after_bar and not text.strip():  # the newline tqdm writes when a bar closes
            return len(text)
        if not text.startswith("\r"):
            return self._stream.write(text)
        line = text.strip()
        if line:
            key = line.split(":", 1)[0]
            now = time.monotonic()
            self._latest = (describe_bar(line), now)
            if now - self._last.get(key, -float("inf")) >= self._interval:
                self._last[key] = now
                self._logged = now
                log.info("%s", self._latest[0])
        return len(text)

    def heartbeat(self, stop: threading.Event) -> None:
        """Between two steps of a slow bar tqdm writes nothing: say it is still at work."""
        while not stop.wait(self._interval / 3):
            if self._latest is None:
                continue
            line, since = self._latest
            now = time.monotonic()
            if now - self._logged >= self._interval:
                self._logged = now
                log.info("%s (still working: %.0f s since that step)", line, now - since)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False


def on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress_bars(progress: bool | None, interval: float = INTERVAL_S) -> Iterator[bool]:
    """The ``progress`` flag to hand to code that opens tqdm bars, for the duration of a run.

    ``False``: no bars, no progress lines. ``True`` or a terminal: tqdm's own bars. Otherwise
    (``None`` off a terminal): bars on, drawn as log lines every ``interval`` seconds.
    """
    if progress is False or progress is True or on_terminal():
        yield bool(progress is not False)
        return
    bars = _BarsToLog(sys.stderr, interval)
    stop = threading.Event()
    beat = threading.Thread(target=bars.heartbeat, args=(stop,), daemon=True)
    beat.start()
    try:
        with contextlib.redirect_stderr(bars):
            yield True
    finally:
        stop.set()
        beat.join()
