"""``build_graph``'s statistics pass: the moments of every node layer, merged over ranks and
checkpointed, and the sample counts the later passes are weighted and keyed by.

Split by data (the default under ``torch.distributed``) every rank runs the pass on its own shard
(of the data, or of the separate Gram set) and the moments are merged with Chan's formula
(basis/distributed.py). Split by features every rank holds all the data, so rank 0 alone runs the
pass and sends the moments to the others (the same bytes as a merge, and identical on every rank).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from interbasis.basis import distributed
from interbasis.basis.checkpoint import BuildCheckpoint
from interbasis.basis.sections import OUTPUT, NodeLayerError, batch_inputs, capture
from interbasis.basis.stats import RunningMoments, as_positions

SPLITS = ("data", "features")


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` flag for a progress setting: None hides bars off a terminal."""
    return None if progress is None else not progress


def merged_statistics(model: nn.Module, batches: Iterable, node_layers: list[str], center: bool,
                      progress: bool | None, stages: BuildCheckpoint | None, split: str = "data"
                      ) -> tuple[dict[str, RunningMoments], dict[str, int], int, int]:
    """Moments of every node layer over all ranks' samples, the positions per sample, this
    rank's first global sample and its number of samples; from / to the checkpoint if any.

    ``split="features"``: every rank passes all the samples; rank 0 computes, every rank
    receives, and each rank's samples are all of them (offset 0).
    """
    rank = distributed.rank_and_size()[0]
    saved = None if stages is None else stages.load("statistics")
    if saved is None and split == "features":
        def compute() -> dict:
            moments, positions = statistics(model, batches, node_layers, center, progress)
            if not moments:
                raise ValueError("data is empty: no batch to compute statistics from")
            count = moments[node_layers[0]].count // positions[node_layers[0]]
            return {"moments": states(moments), "positions": positions, "counts": [count]}

        saved = distributed.on_rank_zero(compute, None)
        for index, state in enumerate(saved["moments"].values()):  # one broadcast, per layer
            if distributed.active():
                distributed.count_traffic(state, f"statistics{index}")
        if stages is not None:
            stages.save("statistics", saved)
    elif saved is None:
        shard = None if stages is None else stages.load_shard("statistics")
        if shard is not None:
            moments = {name: RunningMoments.from_state(state)
                       for name, state in shard["moments"].items()}
            positions = shard["positions"]
        else:
            moments, positions = statistics(model, batches, node_layers, center, progress)
            if stages is not None:
                stages.save_shard("statistics", {"moments": states(moments),
                                                 "positions": positions})
        n_local = moments[node_layers[0]].count // positions[node_layers[0]] if moments else 0
        distributed.sample_offset(n_local)  # every rank raises if one has no data
        counts = distributed.gather_counts(n_local)
        for index, moment in enumerate(moments.values()):
            moment.merge_ranks(f"statistics{index}")
        saved = {"moments": states(moments), "positions": positions, "counts": counts}
        if stages is not None:
            stages.save("statistics", saved)
    moments = {name: RunningMoments.from_state(state) for name, state in saved["moments"].items()}
    counts = saved["counts"]
    if split == "features":
        return moments, saved["positions"], 0, counts[0]
    return moments, saved["positions"], sum(counts[:rank]), counts[rank]


def basis_samples(data: Tensor | Iterable, split: str = "data") -> tuple[int, int]:
    """(this rank's first global sample, its number of samples) of the basis data, when the means
    and Grams came from a separate Gram set (so the statistics pass did not count them).

    Alone (or split by features, where every rank holds all of it) the offset is 0 and the count
    weighs nothing, so an iterable is not read for it.
    """
    if not distributed.active() or split == "features":
        return 0, len(data) if isinstance(data, Tensor) else 0
    if isinstance(data, Tensor):
        n_local = len(data)
    else:
        n_local = 0
        for batch in data:
            inputs = batch_inputs(batch)
            if not isinstance(inputs, Tensor):
                raise ValueError("with gram_inputs under torch.distributed the data's batches "
                                 "must be tensors (their samples are counted for the ranks' "
                                 f"offsets), got {type(inputs).__name__}")
            n_local += inputs.shape[0]
    return distributed.sample_offset(n_local)[0], n_local


def states(moments: dict[str, RunningMoments]) -> dict[str, dict]:
    return {name: moment.state() for name, moment in moments.items()}


def statistics(model: nn.Module, batches: Iterable, node_layers: list[str], center: bool,
               progress: bool | None) -> tuple[dict[str, RunningMoments], dict[str, int]]:
    """The moments of every node layer over ``batches`` and the positions per sample."""
    moments: dict[str, RunningMoments] = {}
    positions: dict[str, int] = {}
    first = True
    with torch.no_grad():
        for inputs in tqdm(batches, desc="statistics", disable=tqdm_disable(progress),
                           leave=False):
            try:
                acts = capture(model, inputs, node_layers)
            except NodeLayerError:
                raise
            except Exception as error:
                shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs)
                raise ValueError(f"the model failed on a data batch of shape {shape}: "
                                 f"{type(error).__name__}: {error}") from error
            for name in node_layers:
                x = as_positions(acts[name])
                if first:
                    moments[name] = RunningMoments(x.shape[-1], device=x.device)
                    positions[name] = x.shape[1]
                if name != OUTPUT:
                    check_constant(name, x)
                moments[name].update(x)
            first = False
    if first:
        if distributed.active():  # the other ranks learn it in sample_offset, then all raise
            return {}, {}
        raise ValueError("data is empty: no batch to compute statistics from")
    return moments, positions


def check_constant(name: str, x: Tensor) -> None:
    constant = x[..., -1]
    if not torch.all(constant == 1):
        raise NodeLayerError(
            f"node layer {name!r}: the last coordinate is not the constant 1 (bias folding); "
            "the model's fold_bias() must append a constant coordinate to every node layer")
