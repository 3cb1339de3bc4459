"""One ``build_graph`` across ``torch.distributed`` ranks: sums in float64, decompositions once.

Inside an initialised process group (Gloo on CPU, NCCL on GPU) every rank calls ``build_graph``
with its own shard of the data (and, with ``gram_inputs``, its own shard of the separate Gram set,
the two cut independently). The build then exchanges, per node layer, only what the statistics
and the sums over samples need:

- the moments (count, mean, centred scatter) of every node layer, merged with Chan's pairwise
  formula, so unequal shards are weighted by their sample counts;
- M' and the squared edges of every section, as count-weighted sums (each is a mean over
  samples x positions);
- the bases: every eigendecomposition is done once, on rank 0, and its result broadcast, so every
  rank holds bit-identical bases (and so bit-identical inputs to the next section).

Sums are a reduce to rank 0 followed by a broadcast (not an all-reduce, whose result may differ in
the last bit between ranks under some algorithms), always in float64. The shards are read as
consecutive pieces of one dataset in rank order: rank r's samples are global samples
``offset_r ...`` (:func:`sample_offset`), which the stochastic sources are keyed on
(basis/sources.py), so a sharded build reproduces the single-process build of the concatenated
data to round-off.

Split by features (``build_graph(split="features")``) every rank holds all the data instead and
computes the Jacobian rows of its consecutive share of each section's output features
(:func:`feature_share`): its part of M' (a sum over output features) and its rows of the edges
(zero elsewhere) are summed over ranks; the statistics are computed on rank 0 and broadcast.

:data:`traffic` counts the bytes each rank sends per stage (benchmarks/bench_distributed.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
from torch import Tensor

T = TypeVar("T")
# bytes of tensor payload exchanged per stage, as seen by this rank (reduce + broadcast counted
# once each: the volume one rank puts on the wire, up to the collective's algorithm factor)
traffic: dict[str, int] = defaultdict(int)


def _dist():
    import torch.distributed as dist

    return dist


def active() -> bool:
    """True inside an initialised process group of more than one rank."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if not active():
        return 0, 1
    dist = _dist()
    return dist.get_rank(), dist.get_world_size()


def comm_device() -> torch.device:
    """Where collectives run: the rank's GPU under NCCL, else the CPU."""
    if _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_over_ranks(tensor: Tensor, stage: str = "other") -> Tensor:
    """The sum of ``tensor`` over ranks, in float64, identical on every rank (a new tensor in
    ``tensor``'s dtype and device); ``tensor`` itself outside a process group."""
    if not active():
        return tensor
    dist = _dist()
    buffer = tensor.detach().to(device=comm_device(), dtype=torch.float64).contiguous().clone()
    dist.reduce(buffer, dst=0)
    dist.broadcast(buffer, src=0)
    traffic[stage] += 2 * buffer.numel() * buffer.element_size()
    return buffer.to(device=tensor.device, dtype=tensor.dtype)


def feature_share(width: int) -> slice:
    """This rank's consecutive share of ``width`` output features (``split="features"``; sizes
    differ by at most one, in rank order; empty for the last ranks when width < world)."""
    rank, world = rank_and_size()
    base, extra = divmod(width, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def gather_counts(count: int) -> list[int]:
    """Every rank's ``count`` (e.g. its number of samples), in rank order."""
    if not active():
        return [count]
    dist = _dist()
    local = torch.tensor([count], dtype=torch.int64, device=comm_device())
    counts = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, local)
    return [int(c.item()) for c in counts]


def sample_offset(n_local: int) -> tuple[int, int]:
    """(index of this rank's first sample in the concatenated data, total samples).

    ValueError on every rank (so none waits forever) when some rank has no data.
    """
    counts = gather_counts(n_local)
    empty = [rank for rank, count in enumerate(counts) if count == 0]
    if empty:
        raise ValueError(f"data is empty on rank(s) {empty} of {len(counts)}: give every rank at "
                         f"least one sample (samples per rank: {counts})")
    rank, _ = rank_and_size()
    return sum(counts[:rank]), sum(counts)


def weighted_mean(mean: Tensor, count: int, stage: str) -> Tensor:
    """The mean over all ranks' samples of a per-rank mean over ``count`` samples."""
    if not active():
        return mean
    total = sum(gather_counts(count))
    return sum_over_ranks(mean.to(torch.float64) * count, stage).div_(total).to(mean.dtype)


def merge_moments(count: int, mean: Tensor, scatter: Tensor, stage: str = "statistics"
                  ) -> tuple[int, Tensor, Tensor]:
    """(count, mean, centred scatter) of the union of every rank's samples (Chan et al.):
    mean = sum n_r mu_r / N, S = sum_r [S_r + n_r (mu_r - mu)(mu_r - mu)^T]."""
    if not active():
        return count, mean, scatter
    total = sum(gather_counts(count))
    merged_mean = sum_over_ranks(mean.to(torch.float64) * count, stage) / total
    delta = mean.to(torch.float64) - merged_mean
    local = scatter.to(torch.float64) + count * torch.outer(delta, delta)
    merged_scatter = sum_over_ranks(local, stage)
    return total, merged_mean.to(mean.dtype), merged_scatter.to(scatter.dtype)


def on_rank_zero(compute: Callable[[], T], stage: str | None = "bases") -> T:
    """``compute()`` on rank 0 only, its result (any picklable object of CPU tensors) sent to
    every rank; a plain call outside a process group. An error on rank 0 is raised on every rank.
    ``stage``: where :data:`traffic` counts the bytes (None: the caller counts them).
    """
    if not active():
        return compute()
    dist = _dist()
    outcome: tuple[str, Any] | None = None
    error: Exception | None = None
    if dist.get_rank() == 0:
        try:
            outcome = ("ok", compute())
        except Exception as caught:  # every rank must leave the broadcast, then raise
            error = caught
            outcome = ("error", f"{type(caught).__name__}: {caught}")
    payload = [outcome]
    dist.broadcast_object_list(payload, src=0, device=comm_device())
    status, value = cast(tuple[str, Any], payload[0])
    if stage is not None:
        count_traffic(value, stage)
    if status == "error":
        if error is not None:
            raise error
        raise RuntimeError(f"rank 0 failed: {value}")
    return value


def check_same(value: object, what: str) -> None:
    """ValueError on every rank when ranks disagree on ``value`` (e.g. build settings)."""
    if not active():
        return
    dist = _dist()
    values: list = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise ValueError(f"ranks disagree on {what}: {values}")


def count_traffic(sent: object, stage: str) -> None:
    """Count the tensor bytes of ``sent`` (tensors, lists, dicts, dataclasses) under ``stage``."""
    traffic[stage] += _nbytes(sent)


def _nbytes(obj: object) -> int:
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(item) for item in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(item) for item in obj.values())
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_nbytes(getattr(obj, name)) for name in obj.__dataclass_fields__)
    return 0
