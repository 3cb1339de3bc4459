"""Comparing two bases on one model without a per-family tolerance (figure 10, issue 16).

A k_required or edges_required count depends on a tolerance in the score's own unit (0.001
accuracy, 0.05 nats), so counts from different model families are not comparable. These functions
read a stored ablation curve (score against features or edges kept) on the scale of its own
ablation gap instead:

- :func:`normalised_deficit`: the share of the (ablate-all -> unablated) gap still lost at each
  point, 1 with nothing kept, 0 at the unablated score;
- :func:`area_above_curve`: the integral of that deficit over the count kept, an "effective count"
  (a curve that jumps from 1 to 0 at k* gives exactly k*), with the bounds that monotonicity
  allows between the evaluated points. On the dense node-ablation curves the bounds are a feature
  apart; on the edge bisection (a handful of probes near one tolerance) they are wide, and the
  bounds say so;
- :func:`edge_area`: that area for one edge ablation as a share of its possible edges, where the
  ablation scored every halving of the edges kept (``edge_ablation(curve=True)``): a tolerance-
  free "fraction of edges needed" (1 - the area under the normalised curve), comparable across
  model families;
- :func:`required_bracket`: the count needed to stay within a tolerance given as a share of the
  gap, bracketed by the evaluated points;
- :func:`paired_log_ratios` and :func:`mean_interval`: per-seed log-ratios of two methods and their
  mean with a t interval.

All take plain arrays or frames; nothing here reads files or runs a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Two-sided 95% Student t quantiles by degrees of freedom (standard tables); beyond 30, 1.96.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


@dataclass(frozen=True)
class Area:
    """The area above a normalised curve: trapezoid estimate and monotone bounds."""

    value: float
    lower: float
    upper: float
    n_max: int  # the largest count evaluated (all features or all possible edges)

    @property
    def fraction(self) -> float:
        """The area as a share of the largest count (0: nothing is needed, 1: everything)."""
        return self.value / self.n_max if self.n_max else math.nan


def _sorted_curve(xs, scores) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(xs, dtype=float)
    s = np.asarray(scores, dtype=float)
    if x.shape != s.shape or x.ndim != 1:
        raise ValueError(f"a curve needs matching 1-d counts and scores, got {x.shape} and "
                         f"{s.shape}")
    if not len(x):
        raise ValueError("the curve is empty")
    order = np.argsort(x, kind="stable")
    x, s = x[order], s[order]
    unique, start = np.unique(x, return_index=True)  # repeated counts: their mean score
    return unique, np.add.reduceat(s, start) / np.diff(np.append(start, len(s)))


def normalised_deficit(xs, scores, base_score: float, higher_is_better: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(counts, deficit): ``(base - score) / (base - score at 0 kept)`` (signs for a loss).

    The curve must contain the count 0 (everything ablated), which fixes the gap; a gap of 0 (the
    ablation changes nothing) raises ValueError, since no share of it is defined.
    """
    x, s = _sorted_curve(xs, scores)
    if x[0] != 0:
        raise ValueError(f"the curve starts at {x[0]:g} kept, not 0: the ablate-all score "
                         "that sets the gap is missing")
    sign = 1.0 if higher_is_better else -1.0
    gap = sign * (base_score - s[0])
    if not gap > 0:
        raise ValueError(f"ablating everything does not worsen the score (gap {gap:g})")
    return x, sign * (base_score - s) / gap


def area_above_curve(xs, scores, base_score: float, higher_is_better: bool) -> Area:
    """Integral of the normalised deficit over the count kept (trapezoid), with bounds.

    Between two evaluated counts the curve is unknown; if the score only improves as more is
    kept, the deficit there lies between its values at the two ends, which gives ``lower`` and
    ``upper``. The deficit is clipped to [0, 1] first: a score better than unablated (noise)
    should not earn negative area.
    """
    x, deficit = normalised_deficit(xs, scores, base_score, higher_is_better)
    d = np.clip(deficit, 0.0, 1.0)
    widths = np.diff(x)
    low, high = np.minimum(d[1:], d[:-1]), np.maximum(d[1:], d[:-1])
    return Area(value=float(np.sum(widths * (d[1:] + d[:-1]) / 2)),
                lower=float(np.sum(widths * low)), upper=float(np.sum(widths * high)),
                n_max=int(x[-1]))


def has_halvings(counts, n_total: int) -> bool:
    """Whether ``counts`` holds 0 and every halving N, N // 2, ..., 1 of ``n_total`` (the points
    ``edge_ablation(curve=True)`` adds): then the area above the curve is pinned to within a
    factor-of-2 step of the count everywhere, not only near one tolerance."""
    have = {int(c) for c in counts}
    return 0 in have and all(n_total >> k in have for k in range(max(n_total, 0).bit_length()))


def edge_area(evaluations: dict[int, float], base_score: float, higher_is_better: bool
              ) -> float:
    """Area above the normalised edge-ablation curve over the share of edges kept, in [0, 1].

    ``evaluations`` maps edges kept to score, as ``EdgeAblationResult.evaluations``; its largest
    count is taken as all possible edges. NaN when the halvings are not all scored (a plain
    bisection: its probes pin the area only between wide bounds) or when ablating every edge does
    not worsen the score. 0: no edge is needed; 1: the score recovers only with every edge;
    a jump from 1 to 0 at the share f* gives f*.
    """
    if not evaluations:
        return math.nan
    counts = sorted(evaluations)
    if not has_halvings(counts, counts[-1]) or counts[-1] == 0:
        return math.nan
    try:
        area = area_above_curve(counts, [evaluations[c] for c in counts], base_score,
                                higher_is_better)
    except ValueError:
        return math.nan
    return area.fraction


def required_bracket(xs, scores, base_score: float, higher_is_better: bool, tolerance: float
                     ) -> tuple[int, int]:
    """(lower, upper) bounds on the count needed to keep the deficit within ``tolerance``.

    ``upper`` is the smallest evaluated count from which every larger evaluated count is within
    (as ``k_required``); ``lower`` is the evaluated count just below it (0 if none). With a score
    that only improves as more is kept, the true count lies in (lower, upper].
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance is a share of the ablation gap in [0, 1), got {tolerance}")
    x, deficit = normalised_deficit(xs, scores, base_score, higher_is_better)
    within = deficit <= tolerance + 1e-12
    upper_index = len(x) - 1
    for i in range(len(x) - 1, -1, -1):
        if not within[i]:
            break
        upper_index = i
    lower = int(x[upper_index - 1]) if upper_index > 0 else 0
    return lower, int(x[upper_index])


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its two-sided 95% t interval (NaN bounds for one value)."""
    if level != 0.95:
        raise ValueError("only the 95% interval is tabulated")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    df = len(v) - 1
    t = next((_T95[k] for k in sorted(_T95) if k >= df), 1.96)
    half = t * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def paired_log_ratios(frame: pd.DataFrame, value: str, method: str, baseline: str,
                      keys: tuple[str, ...] = ("row",), censored: str | None = None
                      ) -> pd.DataFrame:
    """log2(method / baseline) of ``value`` per seed, pairing the two methods' runs by seed.

    ``frame`` is long: one row per (keys..., method, seed) with the ``value`` column and, when
    ``censored`` names a boolean column, whether that value is only a bound (the tolerance was
    never reached). Returns one row per key and seed present for both methods with ``log2_ratio``
    (NaN when either value is not > 0 or when both are censored), ``censored_method`` /
    ``censored_baseline`` and ``status``: "ok", "both censored", "method censored" (the ratio is
    a lower bound), "baseline censored" (an upper bound) or "missing" (a value is NaN).
    """
    cols = [*keys, "seed"]
    extra = [censored] if censored else []
    left = frame[frame["method"] == method][[*cols, value, *extra]]
    right = frame[frame["method"] == baseline][[*cols, value, *extra]]
    pairs = left.merge(right, on=cols, suffixes=("_method", "_baseline"))
    a, b = pairs[f"{value}_method"].astype(float), pairs[f"{value}_baseline"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((a > 0) & (b > 0), np.log2(a / b), np.nan)
    if censored:
        ca = pairs[f"{censored}_method"].astype(bool).to_numpy()
        cb = pairs[f"{censored}_baseline"].astype(bool).to_numpy()
    else:
        ca = cb = np.zeros(len(pairs), dtype=bool)
    missing = ~(np.isfinite(a.to_numpy()) & np.isfinite(b.to_numpy()))
    status = np.select([ca & cb, ca, cb, missing], ["both censored", "method censored",
                                                    "baseline censored", "missing"], "ok")
    ratio = np.where(ca & cb, np.nan, ratio)
    return pairs[cols].assign(value_method=a.to_numpy(), value_baseline=b.to_numpy(),
                              log2_ratio=ratio, censored_method=ca, censored_baseline=cb,
                              status=status).reset_index(drop=True)
