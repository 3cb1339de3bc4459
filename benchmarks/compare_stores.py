"""Did a code change change any result? Compare two results stores made by the same runs under
two versions of the code: every run's summary (timing keys aside), its other files byte for byte,
its graph's tensors, and the cached checkpoints (same file name = same cache key; weights equal).

    # the same runs, models trained fresh, under each version (INTERBASIS_RESULTS=<store>):
    INTERBASIS_RESULTS=/tmp/old python -m interbasis.run debug=tiny_poly threads=1   # old code
    INTERBASIS_RESULTS=/tmp/new python -m interbasis.run debug=tiny_poly threads=1   # new code
    python benchmarks/compare_stores.py /tmp/old /tmp/new

Prints one table row per run and one line per checkpoint; exits 1 if anything differs.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from interbasis.basis import load_graph

SKIP = {"config.yaml", "meta.json", "summary.json"}  # config and meta name paths and times
TIMING = ("time/", "train/seconds", "train/steps_per_s")


def summary_differences(a: dict, b: dict) -> list[str]:
    def same(x: object, y: object) -> bool:
        return x == y or (isinstance(x, float) and isinstance(y, float)
                          and math.isnan(x) and math.isnan(y))

    return [f"{key}: {a.get(key)} vs {b.get(key)}" for key in sorted(set(a) | set(b))
            if not key.startswith(TIMING) and not same(a.get(key), b.get(key))]


def result_files(run: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()
            and path.name not in SKIP and path.suffix not in (".pt", ".lock")}


def graphs_equal(a: Path, b: Path) -> bool:
    ga, gb = load_graph(a), load_graph(b)
    layers = all(torch.equal(x.C, y.C) and torch.equal(x.eigenvalues, y.eigenvalues)
                 for x, y in zip(ga.layers, gb.layers, strict=True))
    edges = (ga.edges is None) == (gb.edges is None) and (
        ga.edges is None or all(torch.equal(x, y) for x, y in zip(ga.edges, gb.edges, strict=True)))
    return layers and edges


def weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    # a poly_toy checkpoint from before the shared training loop kept W at the top
    return checkpoint["model_state"] if "model_state" in checkpoint else {"W": checkpoint["W"]}


def main(old: Path, new: Path) -> int:
    changed = 0
    print("| run | summary keys | summary equal (timing aside) | files | differing files | "
          "graph equal |\n|---|---|---|---|---|---|")
    for run in sorted(p for p in (old / "runs").glob("*/*") if not p.name.startswith(".")):
        name, other = run.relative_to(old / "runs"), new / "runs" / run.relative_to(old / "runs")
        if not (run / "summary.json").is_file() or not (other / "summary.json").is_file():
            print(f"| {name} | no complete result in both | | | | |")
            continue
        a = json.loads((run / "summary.json").read_text())
        b = json.loads((other / "summary.json").read_text())
        diff = summary_differences(a, b)
        fa, fb = result_files(run), result_files(other)
        bad = sorted(f for f in set(fa) | set(fb) if fa.get(f) != fb.get(f))
        graph = next(iter(sorted(run.glob("graph_*.pt"))), None)
        equal = graphs_equal(graph, other / graph.name) if graph is not None else "-"
        changed += len(diff) + len(bad) + (equal is False)
        print(f"| {name} | {len(set(a) | set(b))} | {'yes' if not diff else '; '.join(diff)} | "
              f"{len(fa)} | {', '.join(bad) or 'none'} | {equal} |")
    for path in sorted((old / "cache" / "checkpoints").glob("*/*.pt")):
        other = new / "cache" / "checkpoints" / path.parent.name / path.name
        if not other.is_file():
            changed += 1
            print(f"{path.parent.name}/{path.name}: not in {new} (a different cache key)")
            continue
        x = weights(torch.load(path, weights_only=True))
        y = weights(torch.load(other, weights_only=True))
        equal = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        changed += not equal
        print(f"{path.parent.name}/{path.name}: same cache key, weights bit-identical: {equal}")
    return 1 if changed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
