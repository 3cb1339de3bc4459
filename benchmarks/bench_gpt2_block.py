"""What the paper's GPT-2 build costs (issues 19 and 20; experiment=gpt2_paper): one block of a
randomly initialised GPT-2 small, timed here, and the whole build predicted from it.

Usage::

    python benchmarks/bench_gpt2_block.py --device cpu --contexts 128 256 --json cpu.json
    python benchmarks/bench_gpt2_block.py --device cuda --contexts 256 1024 --windows 2 \\
        --tf32 off on --sections paper block --json gpu.json --table gpu.md
    python benchmarks/bench_gpt2_block.py --small          # tiny sizes, seconds (the tests)

The model is transformers' ``GPT2Config`` defaults (d_model 768, 12 heads, MLP 3072, vocabulary
50,257; built by bench_lm_basis.random_lm, no download) with 2 blocks; every block of GPT-2 small
has this shape, so one block's sections stand for all 12. ``--sections paper``: the paper's node
layers blocks.0.hook_resid_pre -> blocks.0.hook_resid_mid (the attention section) ->
blocks.1.hook_resid_pre (the MLP section), the last one given its PCA basis; ``block``: the whole
block blocks.0 -> blocks.1 as one section (the closed form of basis/dense_block.py; half-block
sections of transformers models have none and take the generic ``vmap(vjp)`` path). LIB basis
with one stochastic source, Jacobian rows in float32 (``--tf32 on``: TF32 matmuls on a GPU),
statistics and sums in float64, edges too unless ``--no-edges``. The basis rows come from
``--windows`` windows of ``context`` random tokens; the means and Grams from enough further windows
that the ranks are full (d + 1, as on the paper's 50,000-window Gram set), so every section
computes as many rows (windows x r_out) as at the paper's scale.

Per section it reports tokens/s (windows x context / seconds), seconds per Jacobian row, the
analytic flop count of a row (:func:`row_flops`) and the achieved GFLOP/s; then the predicted
paper build (:func:`predict`: 500 windows of 1,024 tokens, 12 blocks x 2 sections + the final
stream, Grams from 50,000 windows) on one device and on 8 with the data split across ranks as
``torchrun`` does here, next to the authors' ~10 h on one 80 GB GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lm_basis import random_lm  # noqa: E402  (benchmarks/ is not a package)
from interbasis import build_graph  # noqa: E402
from interbasis.models.lm_blocks import block_index  # noqa: E402
from interbasis.profiling import PeakMemory  # noqa: E402

GPT2_SMALL = dict(d=768, heads=12, mlp=3072, vocab=50257, blocks=12)
SMALL = dict(d=64, heads=4, mlp=256, vocab=256, blocks=12)
# the paper's GPT-2 build (arXiv 2405.10928 §4.3, conf/experiment/gpt2_paper.yaml) and the
# authors' reported cost (issue 19: about 10 hours on one 80 GB GPU)
PAPER = dict(windows=500, context=1024, gram_windows=50_000, authors_hours=10.0)
# assumed, not measured: H200 SXM datasheet dense rates (TFLOP/s) for the flop-count prediction
H200_TFLOPS = {"float32": 67.0, "tf32": 495.0, "float64": 67.0}


def row_flops(section: str, path: str, P: int, d: int, mlp: int) -> dict[str, int]:
    """Flops of one Jacobian row (one output feature of one window, one stochastic source): the
    vector-Jacobian product back to the section's input (matmuls only; 2 flops a multiply-add;
    masked attention counted dense, as it runs) and its share of M' (the (P, d+1)^T (P, d+1)
    product; the edges' contraction with the input basis costs the same).

    attention: W_O^T (2 P d^2), the score and value products' pullbacks (4 of 2 P^2 d), W_QKV^T
    (6 P d^2). mlp: W_out^T and W_in^T (2 P d m each); the closed form contracts the output basis
    into W_out once per chunk, leaving W_in^T. block (closed form): its MLP then its attention.
    """
    attention = 8 * P * d * d + 8 * P * P * d
    mlp_vjp = 2 * P * d * mlp if path == "closed form" else 4 * P * d * mlp
    vjp = {"attention": attention, "mlp": mlp_vjp, "block": attention + 2 * P * d * mlp}[section]
    return {"vjp": vjp, "gram": 2 * P * (d + 1) ** 2}


def forward_flops(P: int, d: int, mlp: int, blocks: int, node_layers: int) -> int:
    """Flops per token of the statistics pass: ``blocks`` blocks (QKV, O, MLP and the two dense
    attention products) and the float64 Gram of each node layer (the logits are never formed:
    the pass stops at the last node layer)."""
    return blocks * (2 * (4 * d * d + 2 * d * mlp) + 4 * P * d) + node_layers * 2 * (d + 1) ** 2


def sections_of(kind: str) -> tuple[list[str], list[str]]:
    """Node layers and the names of their sections for ``--sections paper`` or ``block``."""
    if kind == "paper":
        return (["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre"],
                ["attention", "mlp"])
    return ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"], ["block"]


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(model, shape: dict, P: int, n_windows: int, device: str, kind: str, tf32: bool,
            edges: bool, max_memory: float | None) -> dict:
    """One build of ``kind``'s sections on ``n_windows`` random windows of P tokens."""
    layers, names = sections_of(kind)
    d, vocab = shape["d"], shape["vocab"]
    generator = torch.Generator().manual_seed(P)
    windows = torch.randint(0, vocab, (n_windows, P), generator=generator)
    n_gram = max(n_windows, math.ceil(2 * (d + 1) / P))  # full ranks
    gram = torch.randint(0, vocab, (n_gram, P), generator=generator)
    set_tf32(tf32)
    synchronize(device)
    with PeakMemory(device) as memory:
        start, cpu = time.perf_counter(), time.process_time()
        graph = build_graph(model, windows, layers, method="lib", edges=edges, n_sources=1,
                            batch_size=n_windows, jacobian_dtype=torch.float32,
                            gram_inputs=gram, device=device, max_memory=max_memory)
        synchronize(device)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    timings = graph.settings["timings"]
    tokens = n_windows * P
    case = dict(context=P, windows=n_windows, gram_windows=n_gram, sections=kind,
                jacobian="tf32" if tf32 else "float32", wall_s=wall, cpu_s=cpu,
                peak_extra_mb=memory.extra_mb, max_memory=max_memory,
                statistics_s=timings["statistics"],
                statistics_tokens_per_s=n_gram * P / timings["statistics"],
                ranks=[layer.rank for layer in graph.layers], per_section={})
    for index, name in enumerate(names):
        name_in, name_out = layers[index], layers[index + 1]
        path = ("generic" if block_index(name_in, name_out, model.n_layers, "hook_resid_final")
                is None else "closed form")
        r_out = graph.layers[index + 1].rank
        flops = row_flops(name, path, P, d, shape["mlp"])
        basis = timings["per_layer"]["basis"][name_in]
        edge_s = timings["per_layer"]["edges"].get(name_in, 0.0)
        rows = n_windows * r_out
        per_row = flops["vjp"] + flops["gram"]
        case["per_section"][name] = dict(
            path=path, r_out=r_out, rows=rows, basis_s=basis, edges_s=edge_s,
            tokens_per_s=tokens / basis, row_ms=1e3 * basis / rows, row_gflop=per_row / 1e9,
            gflops=rows * per_row / basis / 1e9,
            edges_gflops=rows * per_row / edge_s / 1e9 if edge_s else None)
    return case


def eigh_seconds(d: int, device: str, repeats: int = 3) -> float:
    """Median seconds of one float64 (d+1) x (d+1) eigendecomposition on ``device``."""
    a = torch.randn(d + 1, d + 1, dtype=torch.float64, device=device,
                    generator=torch.Generator(device).manual_seed(0))
    a = a @ a.T
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        torch.linalg.eigh(a)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2]


def predict(paper_case: dict, shape: dict, eigh_s: float, ranks: int = 1) -> dict:
    """The paper's build predicted from one ``--sections paper`` case at its context (seconds).

    Per window and section: the measured seconds, scaled to full rank r_out = d + 1 and, when
    measured at a shorter context, to 1,024 tokens by the ratio of row_flops (the case's GFLOP/s
    held fixed: the attention products' share grows with the context); times
    ceil(500 / ranks) windows (the slowest rank's shard) and 12 blocks. The statistics: the 50,000
    Gram windows over the ranks at the measured float64 statistics rate (flop/s of the measured
    pass, which runs one block: the pass stops at the last node layer), scaled by forward_flops to
    12 blocks and 25 node layers. The capture: every section runs the model from the start to its
    input (float64) and to its output (the rows' forward), sum_b (b + b + 1/2 + b + 1/2 + b + 1)
    = 2 x 12^2 block forwards a window for the basis and as many for the edges, at the same rate
    (the 2-block measurement already holds block 0's share: counted twice, a few %). Not scaled by
    ranks: 3 eigendecompositions per node layer on rank 0 (measured here), the all-reduce of the
    float64 sums (its size is given, not timed), start-up and model loading.
    """
    measured_P, d, mlp, blocks = (paper_case["context"], shape["d"], shape["mlp"],
                                  shape["blocks"])
    P = PAPER["context"]
    windows = math.ceil(PAPER["windows"] / ranks)
    gram_windows = math.ceil(PAPER["gram_windows"] / ranks)
    node_layers = 2 * blocks + 1
    out: dict = {"ranks": ranks, "context": measured_P}
    for what in ("basis_s", "edges_s"):
        per_window = 0.0
        for name, s in paper_case["per_section"].items():
            flops = [sum(row_flops(name, s["path"], p, d, mlp).values()) for p in (P, measured_P)]
            per_window += (s[what] * (d + 1) / s["r_out"] / paper_case["windows"]
                           * flops[0] / flops[1])
        out[what.replace("_s", "_jacobian_s")] = windows * blocks * per_window
    measured = forward_flops(measured_P, d, mlp, 1, len(paper_case["ranks"]))  # per token
    rate = paper_case["statistics_tokens_per_s"] * measured  # flop/s
    out["statistics_s"] = gram_windows * P * forward_flops(P, d, mlp, blocks, node_layers) / rate
    capture = 2 * blocks**2 * forward_flops(P, d, mlp, 1, 0)  # per token, 24 sections
    out["capture_s"] = windows * P * capture / rate
    out["eigh_s"] = 3 * node_layers * eigh_s
    out["allreduce_mb"] = node_layers * 3 * (d + 1) ** 2 * 8 / 2**20 if ranks > 1 else 0.0
    out["basis_build_h"] = (out["basis_jacobian_s"] + out["statistics_s"] + out["capture_s"]
                            + out["eigh_s"]) / 3600
    out["build_with_edges_h"] = (out["basis_build_h"]
                                 + (out["edges_jacobian_s"] + out["capture_s"]) / 3600)
    out["vs_authors_10h"] = PAPER["authors_hours"] / out["build_with_edges_h"]
    return out


def flop_prediction(shape: dict, P: int, rows_rate: float, stats_rate: float) -> dict:
    """The paper's build on one device from the flop count alone at the given flop/s (for the
    rows, float32 or TF32; for the float64 statistics): an assumption, not a measurement."""
    d, mlp, blocks = shape["d"], shape["mlp"], shape["blocks"]
    attention = row_flops("attention", "generic", P, d, mlp)
    mlp_row = row_flops("mlp", "generic", P, d, mlp)
    rows = PAPER["windows"] * blocks * (d + 1)
    jacobian = rows * sum(f["vjp"] + f["gram"] for f in (attention, mlp_row))
    node_layers = 2 * blocks + 1
    stats = PAPER["gram_windows"] * P * forward_flops(P, d, mlp, blocks, node_layers)
    capture = PAPER["windows"] * P * 2 * blocks**2 * forward_flops(P, d, mlp, 1, 0)
    return dict(jacobian_pflop=jacobian / 1e15, statistics_pflop=(stats + capture) / 1e15,
                basis_h=(jacobian / rows_rate + (stats + capture) / stats_rate) / 3600,
                with_edges_h=(2 * jacobian / rows_rate + (stats + 2 * capture) / stats_rate)
                / 3600)


def table(result: dict) -> str:
    """The cases and predictions as markdown tables."""
    lines = [f"device {result['device']}, torch {result['torch']}, load {result['load']:.1f}, "
             f"{result['threads']} thread(s)", "",
             "| context | windows | sections | jacobian | section | path | r_out | basis s | "
             "tokens/s | ms/row | GFLOP/row | GFLOP/s | edges s | peak MB | CPU/wall |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in result["cases"]:
        if "skipped" in case:
            lines.append(f"| {case['context']} | {case['windows']} | {case['sections']} | "
                         f"{case['jacobian']} | {case['skipped']} |||||||||||")
            continue
        for name, s in case["per_section"].items():
            lines.append(
                f"| {case['context']} | {case['windows']} | {case['sections']} | "
                f"{case['jacobian']} | {name} | {s['path']} | {s['r_out']} | {s['basis_s']:.2f} | "
                f"{s['tokens_per_s']:.1f} | {s['row_ms']:.2f} | {s['row_gflop']:.3f} | "
                f"{s['gflops']:.1f} | {s['edges_s']:.2f} | {case['peak_extra_mb']:.0f} | "
                f"{case['cpu_s'] / case['wall_s']:.2f} |")
    lines += ["", "| from | jacobian | ranks | basis Jacobian h | edges h | statistics h | "
              "capture h | eigh s | all-reduce MB | basis build h | with edges h | "
              "x faster than 10 h |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in result["predictions"]:
        scaled = "" if p["context"] == PAPER["context"] else " (flop-scaled)"
        lines.append(
            f"| context {p['context']}{scaled} | {p['jacobian']} | {p['ranks']} | "
            f"{p['basis_jacobian_s'] / 3600:.2f} | {p['edges_jacobian_s'] / 3600:.2f} | "
            f"{p['statistics_s'] / 3600:.2f} | {p['capture_s'] / 3600:.2f} | {p['eigh_s']:.1f} | "
            f"{p['allreduce_mb']:.0f} | {p['basis_build_h']:.2f} | "
            f"{p['build_with_edges_h']:.2f} | {p['vs_authors_10h']:.1f} |")
    for label, f in result.get("flop_predictions", {}).items():
        lines.append(f"\nNOT MEASURED, {label}: Jacobian {f['jacobian_pflop']:.0f} PFLOP, "
                     f"statistics {f['statistics_pflop']:.1f} PFLOP: basis build "
                     f"{f['basis_h']:.2f} h, with edges {f['with_edges_h']:.2f} h")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--contexts", type=int, nargs="+", default=None)
    parser.add_argument("--windows", type=int, default=1, help="basis windows per case")
    parser.add_argument("--sections", nargs="+", default=["paper"], choices=["paper", "block"])
    parser.add_argument("--tf32", nargs="+", default=["off"], choices=["off", "on"])
    parser.add_argument("--no-edges", action="store_true")
    parser.add_argument("--max-memory", type=float, default=None,
                        help="bytes per Jacobian chunk (default: build_graph's share of free)")
    parser.add_argument("--fallback-memory", type=float, default=None,
                        help="on an out-of-memory error, retry the case with this budget")
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="skip a case whose predicted seconds would pass this total")
    parser.add_argument("--efficiency", type=float, default=0.4,
                        help="assumed share of the H200's datasheet rates (flop prediction)")
    parser.add_argument("--small", action="store_true", help="tiny sizes (tests, --cpu checks)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.contexts is None:
        args.contexts = [16, 32] if args.small else [128]
    return args


def run_case(model, shape, args, P, kind, tf32, started, rate) -> dict:
    """measure() within the time budget; on out-of-memory retried, and every later case run,
    at ``--fallback-memory``."""
    d = shape["d"]
    flops = sum(args.windows * (d + 1) * sum(row_flops(name, "generic", P, d, shape["mlp"])
                                             .values()) for name in sections_of(kind)[1])
    predicted = (1 if args.no_edges else 2) * flops / rate if rate else 0.0
    label = dict(context=P, windows=args.windows, sections=kind,
                 jacobian="tf32" if tf32 else "float32")
    if time.perf_counter() - started + predicted > args.budget_s:
        return {**label, "skipped": f"skipped: ~{predicted:.0f} s past --budget-s"}
    try:
        return measure(model, shape, P, args.windows, args.device, kind, tf32,
                       not args.no_edges, args.max_memory)
    except torch.OutOfMemoryError as error:
        if args.fallback_memory is None or args.max_memory == args.fallback_memory:
            raise
        torch.cuda.empty_cache()
        failed, args.max_memory = args.max_memory, args.fallback_memory  # for the later cases too
        case = measure(model, shape, P, args.windows, args.device, kind, tf32,
                       not args.no_edges, args.max_memory)
        case["out_of_memory_at"] = f"max_memory {failed}: {str(error).splitlines()[0]}"
        return case


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    shape = SMALL if args.small else GPT2_SMALL
    max_context = max(args.contexts)
    model = random_lm("gpt2", shape["d"], max_context, n_layers=2, n_heads=shape["heads"],
                      vocab=shape["vocab"])
    cuda = torch.device(args.device).type == "cuda"
    if cuda:  # CUDA context, cuBLAS handles and kernels loaded outside the timed cases
        measure(model, shape, min(args.contexts), 1, args.device, "paper", False, False, 2e8)
    result: dict = dict(device=torch.cuda.get_device_name() if cuda else "cpu",
                        torch=torch.__version__, load=os.getloadavg()[0], threads=args.threads,
                        shape=shape, paper=PAPER, cases=[], predictions=[])
    started, rate = time.perf_counter(), 0.0
    for P in args.contexts:
        for kind in args.sections:
            for tf32 in args.tf32:
                case = run_case(model, shape, args, P, kind, tf32 == "on", started, rate)
                result["cases"].append(case)
                if "per_section" in case:
                    rate = max(rate, min(s["gflops"] for s in case["per_section"].values()) * 1e9)
                print(json.dumps(case), flush=True)
    eigh_s = eigh_seconds(shape["d"], args.device)
    result["eigh_s"] = eigh_s
    for case in result["cases"]:
        if case["sections"] == "paper" and "per_section" in case:
            for ranks in (1, 8):
                result["predictions"].append({**predict(case, shape, eigh_s, ranks),
                                              "jacobian": case["jacobian"]})
    P = PAPER["context"]
    rates = {"float32": H200_TFLOPS["float32"], "tf32": H200_TFLOPS["tf32"]}
    result["flop_predictions"] = {
        f"H200 {name} rows at {args.efficiency:.0%} of {tflops:.0f} TFLOP/s, float64 statistics "
        f"at {args.efficiency:.0%} of {H200_TFLOPS['float64']:.0f}": flop_prediction(
            shape, P, args.efficiency * tflops * 1e12,
            args.efficiency * H200_TFLOPS["float64"] * 1e12)
        for name, tflops in rates.items()}
    text = table(result)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.table is not None:
        args.table.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
