"""One ``build_graph`` on 1 vs 2 processes (torch.distributed, Gloo, one thread each), split by data
(each rank its shard of the samples) and by output features (each rank all the samples, its share
of every section's output features), and the bytes each rank exchanges per node layer.

"CPU s" is the busiest rank's CPU time in the build: on a machine whose cores are shared with
other jobs the wall time cannot show the scaling, the CPU time of the slowest rank still does (it
is what the wall time becomes with a free core per rank).

Usage::

    python benchmarks/bench_distributed.py                  # modadd paper model, 3,830 train pairs
    python benchmarks/bench_distributed.py --all-pairs      # all 12,769 pairs
    python benchmarks/bench_distributed.py --generic        # also the generic autograd path
    python benchmarks/bench_distributed.py --samples 1000   # the first 1,000 train pairs
    python benchmarks/bench_distributed.py --split data     # one split only (default: both)

The model is the committed seed-0 paper checkpoint (the same case as bench_build_graph.py). Each
world size runs in fresh spawned processes; the build is timed between two barriers, so the time
is the slowest rank's. The 1-process build is the same for both splits (``split`` has no effect
alone), so it runs once. The other tables are the communication of each 2-process build: float64
payload one rank sends per node layer (split by data: reduce + broadcast of the statistics; by
features: rank 0's broadcast of them; both: reduce + broadcast of M' and of the edges, and the
broadcast of the basis rank 0 computed), counted in basis/distributed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.multiprocessing as mp

from bench_build_graph import modadd_case


def _rank(rank: int, world: int, init: str, out: str, all_pairs: bool, generic: bool,
          split: str, samples: int | None) -> None:
    import torch.distributed as dist

    from interbasis.basis import build_graph
    from interbasis.basis.distributed import traffic

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank,
                                world_size=world)
    model, tokens, layers = modadd_case()
    if all_pairs:
        p = int(tokens[:, 0].max()) + 1
        a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
        tokens = torch.stack([a.flatten(), b.flatten(), torch.full_like(a.flatten(), p)], 1)
    tokens = tokens[:samples]
    shard = tokens.tensor_split(world)[rank] if split == "data" else tokens
    if world > 1:
        dist.barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    graph = build_graph(model, shard, layers, fast_paths=not generic, split=split)
    cpu = [time.process_time() - cpu_start]
    if world > 1:
        dist.barrier()
        cpu = [None] * world
        dist.all_gather_object(cpu, time.process_time() - cpu_start)
    wall = time.perf_counter() - start
    if rank == 0:
        timings = {k: v for k, v in graph.settings["timings"].items() if k != "per_layer"}
        Path(out).write_text(json.dumps({
            "wall": wall, "cpu": max(cpu), **timings, "load": os.getloadavg()[0],
            "n": len(tokens), "traffic": dict(traffic),
            "layers": [(layer.name, layer.width, layer.rank) for layer in graph.layers]}))
    if world > 1:
        dist.destroy_process_group()


def measure(world: int, all_pairs: bool, generic: bool, split: str, samples: int | None
            ) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "result.json")
        mp.start_processes(_rank, args=(world, os.path.join(folder, "init"), out, all_pairs,
                                        generic, split, samples), nprocs=world,
                           start_method="spawn")
        return json.loads(Path(out).read_text())


def per_layer_bytes(traffic: dict[str, int]) -> dict[int, dict[str, int]]:
    table: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for stage, nbytes in traffic.items():
        match = re.fullmatch(r"([a-z]+)(\d+)", stage)
        if match:
            table[int(match[2])][match[1]] += nbytes
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-pairs", action="store_true", help="all p^2 pairs, not the train "
                        "split")
    parser.add_argument("--generic", action="store_true", help="also fast_paths=False")
    parser.add_argument("--samples", type=int, default=None, help="the first N samples only")
    parser.add_argument("--split", choices=["data", "features", "both"], default="both")
    args = parser.parse_args()
    splits = ["data", "features"] if args.split == "both" else [args.split]
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores)")
    print(f"{'path':<8} {'split':<9} {'ranks':>5} {'N':>6} {'wall s':>7} {'stats s':>8} "
          f"{'basis s':>8} {'edges s':>8} {'speed-up':>9} {'CPU s':>7} {'CPU speed-up':>13} "
          f"{'load':>5}")
    two: dict[str, dict] = {}
    for generic in ([False, True] if args.generic else [False]):
        path = "generic" if generic else "fast"
        one = measure(1, args.all_pairs, generic, "data", args.samples)
        rows = [("-", 1, one)]
        for split in splits:
            rows.append((split, 2, measure(2, args.all_pairs, generic, split, args.samples)))
            two.setdefault(split, rows[-1][2])
        for split, world, result in rows:
            print(f"{path:<8} {split:<9} {world:>5} {result['n']:>6} {result['wall']:>7.2f} "
                  f"{result['statistics']:>8.2f} {result['basis']:>8.2f} "
                  f"{result['edges']:>8.2f} {one['wall'] / result['wall']:>8.2f}x "
                  f"{result['cpu']:>7.2f} {one['cpu'] / result['cpu']:>12.2f}x "
                  f"{result['load']:>5.1f}")
    for split, result in two.items():
        print(f"\nsplit by {split}: bytes one rank sends per node layer (2 ranks, float64); "
              f"load now {os.getloadavg()[0]:.1f}")
        print(f"{'node layer':<26} {'d':>4} {'r':>4} {'statistics':>11} {'M-prime':>9} "
              f"{'basis':>9} {'edges':>9} {'total':>10}")
        table = per_layer_bytes(result["traffic"])
        for index, (name, width, rank) in enumerate(result["layers"]):
            row = table[index]
            cells = [row.get(key, 0) for key in ("statistics", "basis", "bases", "edges")]
            print(f"{name:<26} {width:>4} {rank:>4} " + " ".join(
                f"{value:>{w}}" for value, w in zip(cells, (11, 9, 9, 9))) + f" {sum(cells):>10}")
        other = {k: v for k, v in result["traffic"].items()
                 if not re.fullmatch(r"[a-z]+\d+", k)}
        print(f"other (final spectra): {other}")
    print("M-prime = M' reduce + broadcast (by features: the sum of the ranks' parts), edges = "
          "reduce + broadcast of the (r_out, r_in) matrix (by features: each rank's rows, zero "
          "elsewhere), basis = rank 0's broadcast of C, C_pinv, eigenvalues")


if __name__ == "__main__":
    main()
