"""Measuring a build: peak memory while it runs, and one timed build_graph call for a config.

Used by ``python -m interbasis.estimate``; the peak is the resident memory (sampled every 5 ms
from /proc) or, on a GPU, ``torch.cuda.max_memory_allocated``, above what was in use before.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time

import torch

from interbasis.basis import build_graph
from interbasis.basis.types import Graph

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


class PeakMemory:
    """``with PeakMemory(device) as m: ...`` then ``m.extra_mb``: the peak above the start."""

    def __init__(self, device: str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated() / 2**20
            return self
        self.base = self.peak = resident_mb()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, resident_mb())
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self.extra_mb = torch.cuda.max_memory_allocated() / 2**20 - self.base
            return
        self.running = False
        self.thread.join()
        self.extra_mb = self.peak - self.base


def build_once(cfg, prepared, n_samples: int | None = None) -> tuple[Graph, dict]:
    """build_graph as the pipeline calls it, on the first ``n_samples`` basis inputs (and the
    same share of a separate Gram set), with a stage checkpoint in a fresh temporary folder as
    a run keeps one (so its digests and stage writes are timed too). The timings gain ``wall``:
    the whole call, setup included (the folded float64 copy, the digests, the final spectra),
    which the phases leave out."""
    from interbasis.training.family import graph_settings

    inputs, gram = prepared.basis_inputs, prepared.gram_inputs
    if n_samples is not None:
        # a separate Gram set (data.gram_samples, the LM presets: 50,000 windows for 500) is
        # cut in the same proportion, so its statistics scale to the run's as the rest does
        if gram is not None:
            gram = gram[:max(1, math.ceil(len(gram) * n_samples / max(1, len(inputs))))]
        inputs = inputs[:n_samples]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interbasis-estimate-") as checkpoint:
        graph = build_graph(prepared.model, inputs, list(cfg.model.node_layers), progress=False,
                            checkpoint=checkpoint, gram_inputs=gram, **graph_settings(cfg))
    return graph, {**graph.settings["timings"], "wall": time.perf_counter() - start}
