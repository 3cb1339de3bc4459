"""One run's basis build across processes (torchrun, or SLURM tasks through submitit).

Usage::

    torchrun --nproc-per-node 2 -m interbasis.run experiment=modadd_paper threads=1
    python -m interbasis.run -m experiment=tiny_gpt device=cuda hydra/launcher=slurm_gpus

Every rank composes the same config and prepares the same model and data; the basis inputs (and
the separate Gram set of ``data.gram_samples``, if any) are split into consecutive shards in rank
order (:func:`shard`) and ``build_graph`` merges them
(basis/distributed.py), so every rank ends with the graph of all the data. Rank 0 alone is the
run: it takes the run directory's lock, writes the results store, talks to W&B and runs the
ablations and metrics (on the full ablation set, as a single-process run does); the other ranks
only build and exit. Rank 0 tells the others once per run whether a build follows and where its
checkpoint folder is (:func:`announce` / :func:`follow`): a run that is skipped, busy or fails
before its build releases them at once.

The build is resumable: its stages go to ``<run dir>/build/`` (basis/checkpoint.py), which
survives the store's ``clear()`` and is removed once the run is complete.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger("interbasis")
CHECKPOINT_DIR = "build"
# A rank waits at most this long for the others (rank 0's model training and ablations are not
# waited for: the followers prepare first, and leave after the build). torchrun, and srun with
# SLURM_KILL_BAD_EXIT=1 (conf/hydra/launcher/slurm_gpus.yaml), stop every rank when one fails.
TIMEOUT = timedelta(hours=2)
_state = {"announced": True}


def init_from_env(device: str) -> None:
    """Join the process group described by the environment (torchrun's RANK/WORLD_SIZE/MASTER_*,
    or a multi-task submitit SLURM job's); NCCL for a CUDA device, Gloo otherwise. Alone: no-op."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if "WORLD_SIZE" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR"):
        import submitit
        from submitit.helpers import TorchDistributedEnvironment

        if submitit.JobEnvironment().num_tasks > 1:  # a SLURM (or local) job of several tasks
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    cuda = device.startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    atexit.register(dist.destroy_process_group)


def rank_and_size() -> tuple[int, int]:
    from interbasis.basis.distributed import rank_and_size

    return rank_and_size()


def build_device(device: str) -> str:
    """The rank's own GPU under a process group (``cuda`` means the one set_device chose)."""
    if device == "cuda" and rank_and_size()[1] > 1:
        return f"cuda:{torch.cuda.current_device()}"
    return device


def shard(inputs: Tensor) -> Tensor:
    """This rank's consecutive piece of the basis inputs (sizes differ by at most one)."""
    rank, world = rank_and_size()
    return inputs if world == 1 else inputs.tensor_split(world)[rank]


@contextlib.contextmanager
def leading() -> Iterator[None]:
    """Rank 0's side of one run: if it ends without :func:`announce` (skipped, busy, failed
    before the build), the other ranks are released."""
    _state["announced"] = rank_and_size()[1] == 1
    try:
        yield
    finally:
        if not _state["announced"]:
            announce(None)


def announce(checkpoint: Path | None) -> None:
    """Rank 0: a build follows, with its stages in ``checkpoint`` (None: no build)."""
    _state["announced"] = True
    if rank_and_size()[1] > 1:
        _broadcast([None if checkpoint is None else str(checkpoint)])


def _broadcast(message: list) -> list:
    import torch.distributed as dist

    from interbasis.basis.distributed import comm_device

    dist.broadcast_object_list(message, src=0, device=comm_device())
    return message


def follow(cfg) -> None:
    """A rank other than 0: prepare the model and data, wait for rank 0's word, build its shard."""
    from interbasis import pipeline

    torch.set_num_threads(cfg.threads)
    prepared = pipeline.prepare(cfg)
    checkpoint = _broadcast([None])[0]
    if checkpoint is not None:
        build(cfg, prepared, Path(checkpoint))


def checkpoint_dir(run_path: Path) -> Path:
    return run_path / CHECKPOINT_DIR


def remove_checkpoint(run_path: Path) -> None:
    """Drop the build's stage files once the run is complete (the graph is in the store)."""
    shutil.rmtree(checkpoint_dir(run_path), ignore_errors=True)


def build(cfg, prepared, checkpoint: Path, overrides: list[str] | None = None):
    """``build_graph`` as a run calls it: on this rank's shard of the basis inputs (and of the
    separate Gram set, ``data.gram_samples``, cut the same way), resumable from ``checkpoint``;
    rank 0 first prints the cost estimate when ``cfg.estimate`` and releases the other ranks.

    ``method.rank_split=features``: every rank passes all the inputs and computes its share of
    each section's output features (``build_graph(split="features")``)."""
    from interbasis.basis import build_graph
    from interbasis.training.family import graph_settings

    rank, world = rank_and_size()
    split = cfg.method.rank_split
    by_data = split == "data"
    if rank == 0:
        if cfg.estimate:
            print_estimate(overrides or [], len(prepared.basis_inputs))
        announce(checkpoint)
        if world > 1:
            log.info("basis build on %d ranks, %s", world, _shares(prepared, world, by_data))
    settings = {**graph_settings(cfg), "device": build_device(cfg.device),
                "progress": cfg.progress if rank == 0 else False}
    inputs, gram = rank_inputs(prepared, split)
    return build_graph(prepared.model, inputs, list(cfg.model.node_layers),
                       checkpoint=checkpoint, gram_inputs=gram, **settings)


def rank_inputs(prepared, split: str = "data") -> tuple[Tensor, Tensor | None]:
    """(basis inputs, Gram set or None) this rank passes to ``build_graph``: its consecutive
    shards of both split by data, all of both split by features."""
    inputs, gram = prepared.basis_inputs, prepared.gram_inputs
    if split != "data":
        return inputs, gram
    return shard(inputs), None if gram is None else shard(gram)


def _shares(prepared, world: int, by_data: bool) -> str:
    """How the build's work is shared, for the log."""
    if not by_data:
        return f"all {len(prepared.basis_inputs)} samples each, output features split"

    def sizes(inputs: Tensor) -> str:
        return "/".join(str(len(part)) for part in inputs.tensor_split(world))

    text = f"{sizes(prepared.basis_inputs)} samples each"
    if prepared.gram_inputs is not None:
        text += f" (Gram set: {sizes(prepared.gram_inputs)})"
    return text


def print_estimate(overrides: list[str], n: int) -> None:
    """``python -m interbasis.estimate`` on two small prefixes (1/64 and 1/32 of the basis data,
    at least 32 and 64 samples: a few percent of the build), in a subprocess, before the build."""
    n2 = min(n, max(64, n // 32))
    n1 = max(1, min(max(32, n // 64), n2 // 2))
    kept = [o for o in overrides if not o.lstrip("+").startswith(("hydra", "estimate"))]
    command = [sys.executable, "-m", "interbasis.estimate", *kept, "--samples", str(n1), str(n2)]
    log.info("cost estimate (estimate=true): %s", " ".join(command[1:]))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log.warning("the cost estimate failed: %s", (result.stderr.strip().splitlines()
                                                      or ["no output"])[-1])
        return
    for line in result.stdout.strip().splitlines():
        log.info("estimate: %s", line)
