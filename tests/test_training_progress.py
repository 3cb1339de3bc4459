"""The elapsed / time-left part of training log lines."""

import time

from interbasis.training.progress import time_left


def test_time_left_extrapolates_the_rate_so_far(monkeypatch):
    monkeypatch.setattr(time, "perf_counter", lambda: 1000.0 + 90.0)
    # steps 200..500 of 2000 took 90 s: 1500 steps to go at 300 steps / 90 s is 450 s
    assert time_left(500, 2000, 200, started=1000.0) == "01:30 elapsed, ~07:30 left"
    assert time_left(200, 2000, 200, started=1000.0) == "01:30 elapsed"  # no rate yet
    monkeypatch.setattr(time, "perf_counter", lambda: 1000.0 + 3725.0)
    assert time_left(1, 2, 0, started=1000.0) == "1:02:05 elapsed, ~1:02:05 left"
