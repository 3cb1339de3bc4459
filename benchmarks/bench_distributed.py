"""One ``build_graph`` on 1 vs 2 processes (torch.distributed, Gloo, one thread each), and the bytes
each rank exchanges per node layer.

"CPU s" is the busiest rank's CPU time in the build: on a machine whose cores are shared with
other jobs the wall time cannot show the scaling, the CPU time of the slowest rank still does (it
is what the wall time becomes with a free core per rank).

Usage::

    python benchmarks/bench_distributed.py                  # modadd paper model, 3,830 train pairs
    python benchmarks/bench_distributed.py --all-pairs      # all 12,769 pairs
    python benchmarks/bench_distributed.py --generic        # also the generic autograd path

The model is the committed seed-0 paper checkpoint (the same case as bench_build_graph.py). Each
world size runs in fresh spawned processes; the build is timed between two barriers, so the time
is the slowest rank's. The second table is the communication of the 2-process build: float64
payload one rank sends per node layer (reduce + broadcast of the statistics, of M' and of the
edges; the broadcast of the basis rank 0 computed), counted in basis/distributed.py.
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


def _rank(rank: int, world: int, init: str, out: str, all_pairs: bool, generic: bool) -> None:
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
    shard = tokens.tensor_split(world)[rank]
    if world > 1:
        dist.barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    graph = build_graph(model, shard, layers, fast_paths=not generic)
    cpu = [time.process_time() - cpu_start]
    if world > 1:
        dist.barrier()
        cpu = [None] * world
        dist.all_gather_object(cpu, time.process_time() - cpu_start)
    wall = time.perf_counter() - start
    if rank == 0:
        timings = {k: v for k, v in graph.settings["timings"].items() if k != "per_layer"}
        Path(out).write_text(json.dumps({
            "wall": wall, "cpu": max(cpu), **timings, "n": len(tokens), "traffic": dict(traffic),
            "layers": [(layer.name, layer.width, layer.rank) for layer in graph.layers]}))
    if world > 1:
        dist.destroy_process_group()


def measure(world: int, all_pairs: bool, generic: bool) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "result.json")
        mp.start_processes(_rank, args=(world, os.path.join(folder, "init"), out, all_pairs,
                                        generic), nprocs=world, start_method="spawn")
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
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores)")
    print(f"{'path':<8} {'ranks':>5} {'N':>6} {'wall s':>7} {'stats s':>8} {'basis s':>8} "
          f"{'edges s':>8} {'speed-up':>9} {'CPU s':>7} {'CPU speed-up':>13}")
    two = None
    for generic in ([False, True] if args.generic else [False]):
        results = {world: measure(world, args.all_pairs, generic) for world in (1, 2)}
        for world, result in results.items():
            speedup = results[1]["wall"] / result["wall"]
            print(f"{'generic' if generic else 'fast':<8} {world:>5} {result['n']:>6} "
                  f"{result['wall']:>7.2f} {result['statistics']:>8.2f} "
                  f"{result['basis']:>8.2f} {result['edges']:>8.2f} {speedup:>8.2f}x "
                  f"{result['cpu']:>7.2f} {results[1]['cpu'] / result['cpu']:>12.2f}x")
        two = two or results[2]
    print(f"\nbytes one rank sends per node layer (2 ranks; reduce + broadcast, float64); "
          f"load now {os.getloadavg()[0]:.1f}")
    print(f"{'node layer':<26} {'d':>4} {'r':>4} {'statistics':>11} {'M-prime':>9} "
          f"{'basis':>9} {'edges':>9} {'total':>10}")
    table = per_layer_bytes(two["traffic"])
    for index, (name, width, rank) in enumerate(two["layers"]):
        row = table[index]
        cells = [row.get(key, 0) for key in ("statistics", "basis", "bases", "edges")]
        print(f"{name:<26} {width:>4} {rank:>4} " + " ".join(
            f"{value:>{w}}" for value, w in zip(cells, (11, 9, 9, 9))) + f" {sum(cells):>10}")
    other = {k: v for k, v in two["traffic"].items() if not re.fullmatch(r"[a-z]+\d+", k)}
    print(f"other (final spectra): {other}; M-prime = M' reduce, basis = rank 0's broadcast of "
          "C, C_pinv, eigenvalues")


if __name__ == "__main__":
    main()
