"""A long ``build_graph`` that survives a kill: every finished stage is on disk, read back on rerun.

``build_graph(..., checkpoint=folder)`` writes, as each stage completes,

    statistics.pt     the moments (count, mean, centred scatter) of every node layer
    basis<i>.pt       the basis of node layer i and M' of the section after it
    edges<i>.pt       the squared edges of section i -> i+1

(sections run from the last backwards), each atomically (a temporary file renamed into place:
``atomic_torch_save``), so a file that exists is complete. Under ``torch.distributed`` rank 0
writes these (the merged results), and every rank also writes its own shard's partial sums
before they are merged (``<stage>.shard<r>of<w>.pt``), so a rank that finished its share of a
stage does not redo it after another rank was killed. A rerun with the same model, data and
settings reads every finished stage (rank 0 reads, every rank receives) and computes from the first
unfinished one; the loaded tensors are exact, so the graph is bit-identical to an uninterrupted
build. Every file carries a digest of what the build depends on (the folded model's parameters,
every rank's shard of the data and of the separate Gram set when they are tensors, the settings,
the node layers, the rank); a file with another digest is from another build and is ignored (one
log line), then overwritten. Split by features (``build_graph(split="features")``) a rank's shard
file holds its output features' part of M' or of the edges.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from interbasis.basis import distributed
from interbasis.basis.types import atomic_torch_save

FORMAT = "interbasis.build-stage"
log = logging.getLogger("interbasis")


def tensor_digest(tensor: Tensor) -> str:
    """blake2b of a tensor's dtype, shape and bytes."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.blake2b(f"{flat.dtype}{tuple(tensor.shape)}".encode(), digest_size=16)
    digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_digest(model: nn.Module) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor_digest(tensor).encode())
    return digest.hexdigest()


def data_digest(data: object) -> str:
    """The data's bytes when it is a tensor; an iterable of batches is trusted to be the same."""
    return tensor_digest(data) if isinstance(data, Tensor) else f"iterable:{type(data).__name__}"


class BuildCheckpoint:
    """The stage files of one build in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, settings: dict, model: nn.Module,
                 data: object, gram_data: object | None = None):
        self.folder = Path(folder)
        self.rank, self.world = distributed.rank_and_size()
        # the whole dataset (and Gram set) is every rank's shard of it, in rank order
        gram = None if gram_data is None else self._shards(gram_data)
        key = {"settings": {**settings, "gram_data": gram}, "model": model_digest(model),
               "data": self._shards(data)}
        self.digest = _digest(key)
        self.shard_digest = _digest({**key, "rank": self.rank, "world": self.world})
        self._warned = False

    def _shards(self, data: object) -> list[str | None]:
        """Every rank's digest of its shard of ``data``, in rank order."""
        local = data_digest(data)
        shards: list[str | None] = [local]
        if self.world > 1:
            import torch.distributed as dist

            shards = [None] * self.world
            dist.all_gather_object(shards, local)
        return shards

    # -- merged results: rank 0 reads and writes, every rank receives --------------------------

    def load(self, stage: str) -> dict | None:
        """The stage's payload when a complete file of this build holds it, else None (the same
        answer on every rank)."""
        return distributed.on_rank_zero(lambda: self._read(self.folder / f"{stage}.pt",
                                                           self.digest), "resume")

    def save(self, stage: str, payload: dict) -> None:
        if self.rank == 0:
            self._write(self.folder / f"{stage}.pt", self.digest, stage, payload)

    # -- one rank's partial sums ---------------------------------------------------------------

    def load_shard(self, stage: str) -> dict | None:
        if self.world == 1:
            return None
        return self._read(self._shard_path(stage), self.shard_digest)

    def save_shard(self, stage: str, payload: dict) -> None:
        if self.world > 1:
            self._write(self._shard_path(stage), self.shard_digest, stage, payload)

    def _shard_path(self, stage: str) -> Path:
        return self.folder / f"{stage}.shard{self.rank}of{self.world}.pt"

    def _read(self, path: Path, digest: str) -> dict | None:
        if not path.is_file():
            return None
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # not ours or unreadable: recompute, the write replaces it
            log.warning("build checkpoint %s unreadable (%s): computing it again", path, error)
            return None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None
        if record.get("digest") != digest:
            if not self._warned:
                log.info("build checkpoint in %s is from another build (model, data or "
                         "settings differ): starting over", self.folder)
                self._warned = True
            return None
        log.info("resumed %s from %s", record["stage"], path)
        return record["payload"]

    def _write(self, path: Path, digest: str, stage: str, payload: dict) -> None:
        atomic_torch_save({"format": FORMAT, "digest": digest, "stage": stage,
                           "payload": payload}, path)


def shard_mean(stages: BuildCheckpoint | None, stage: str, n_local: int,
               compute: Callable[[], Tensor]) -> Tensor:
    """A mean over this rank's ``n_local`` samples (``compute()``, or its shard file when one was
    saved), turned into the mean over every rank's samples (itself when alone)."""
    saved = None if stages is None else stages.load_shard(stage)
    local = saved["local"] if saved is not None else compute()
    if stages is not None and saved is None:
        stages.save_shard(stage, {"local": local})
    return distributed.weighted_mean(local, n_local, stage)


def shard_sum(stages: BuildCheckpoint | None, stage: str, compute: Callable[[], Tensor]
              ) -> Tensor:
    """This rank's part of a sum (``compute()``, e.g. its output features' share of M', or its
    shard file) added to every other rank's: ``split="features"``."""
    saved = None if stages is None else stages.load_shard(stage)
    local = saved["local"] if saved is not None else compute()
    if stages is not None and saved is None:
        stages.save_shard(stage, {"local": local})
    return distributed.sum_over_ranks(local, stage)


def _digest(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
