"""Reading ablation curves (docs/method.md §6.1 and section 7): how many features a layer needs."""

from __future__ import annotations

from interbasis.basis.types import NodeAblationCurve

# Slack on "degradation <= delta", relative to the score's scale: in floating point
# 1.0 - 0.999 is 0.0010000000000000009, and accuracy drops of exactly delta are common on
# round dataset sizes.
_DELTA_RTOL = 1e-9


def degradation(score: float, base_score: float, higher_is_better: bool) -> float:
    """How much worse ``score`` is than ``base_score`` (negative when it is better)."""
    return base_score - score if higher_is_better else score - base_score


def k_required(curve: NodeAblationCurve, delta: float) -> int:
    """Smallest evaluated k whose score, and the score at every larger evaluated k, is within delta.

    Within means ``degradation(score) <= delta`` (plus a 1e-9 relative slack for rounding).
    Requiring every larger k to be within too makes the answer robust to non-monotone curves: a
    lucky dip-free point at small k followed by a drop does not count. When several scores share a
    k, all of them must be within. NaN scores are never within.

    If even the largest evaluated k is not within delta (only possible when ks stop short of the
    layer's rank, or the evaluation is noisy), returns max(ks): the curve offers no smaller answer
    and ks run up to the layer's original width in the schedule of docs/method.md section 6.1, so
    this reads as "needs
    the whole layer". Raises ValueError on an empty curve or mismatched ks / scores.
    """
    if len(curve.ks) != len(curve.scores):
        raise ValueError(
            f"curve for {curve.layer!r} has {len(curve.ks)} ks but {len(curve.scores)} scores"
        )
    if not curve.ks:
        raise ValueError(f"curve for {curve.layer!r} is empty")
    slack = _DELTA_RTOL * max(1.0, abs(curve.base_score))
    within_by_k: dict[int, bool] = {}
    for k, score in zip(curve.ks, curve.scores, strict=True):
        within = degradation(score, curve.base_score, curve.higher_is_better) <= delta + slack
        within_by_k[int(k)] = within_by_k.get(int(k), True) and within
    required = max(within_by_k)
    for k in sorted(within_by_k, reverse=True):
        if not within_by_k[k]:
            break
        required = k
    return required
