"""Time `python -m interbasis.results aggregate` over thousands of synthetic runs.

    python benchmarks/bench_aggregate.py                 # 3000 runs, ~15 s in all
    python benchmarks/bench_aggregate.py --runs 10000

Each run gets what a modadd run writes: summary.json with ~45 metrics, meta.json, curves.csv
(node and edge curves, ~60 rows) and one analysis table (~130 rows), plus one failed and one
killed run per 100 that aggregation must skip. The files are written plainly (no fsync) to make
the store quickly; aggregation reads them the same way whichever way they were written.

Measured here (2 shared cores): 2940 complete runs of 3000 aggregate in 1.3 s (runs.csv 2940 rows,
curves.csv 176,400 rows, fourier.csv 382,200 rows).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from interbasis.results.aggregate import aggregate


def write_store(runs_root: Path, count: int) -> None:
    layers = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"]
    for index in range(count):
        method, seed = ("lib", "pca")[index % 2], index // 2
        run_dir = runs_root / f"exp{index % 4}" / f"method={method},seed={seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "meta.json").write_text(json.dumps(
            {"overrides": [f"method={method}", f"seed={seed}"], "git_commit": "abc123",
             "start_time": "2026-01-01T00:00:00+00:00"}))
        curve_rows = [f"node,{layer},{k},{0.9 - k / 100},0.99,accuracy,"
                      for layer in layers for k in range(15)]
        curve_rows += [f"edge,{layers[0]}->{layers[1]},{n},0.98,0.99,accuracy,0.001"
                       for n in range(15)]
        (run_dir / "curves.csv").write_text(
            "kind,layer,x,score,base_score,score_name,delta\n" + "\n".join(curve_rows) + "\n")
        (run_dir / "fourier.csv").write_text(
            "feature,purity\n" + "".join(f"{f},{f / 130}\n" for f in range(130)))
        if index % 100 == 98:
            (run_dir / "FAILED").write_text("type: RuntimeError\nmessage: boom\n")
            continue
        if index % 100 == 99:
            continue  # killed: no summary
        summary = {f"metric/{k}": k * 0.5 + seed for k in range(45)}
        summary.update(method=method, seed=seed, model="modadd", status="complete")
        (run_dir / "summary.json").write_text(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_store(root / "runs", args.runs)
        written = time.perf_counter() - start
        start = time.perf_counter()
        rows = aggregate(root / "runs", root / "tables")
        seconds = time.perf_counter() - start
        sizes = {name: (root / "tables" / f"{name}.csv").stat().st_size for name in rows}
    print(f"wrote {args.runs} runs in {written:.1f} s\n")
    print(f"| {'table':10} | {'rows':>9} | {'MB':>6} |")
    print(f"| {'-' * 10} | {'-' * 9}:| {'-' * 6}:|")
    for name, count in rows.items():
        print(f"| {name:10} | {count:9d} | {sizes[name] / 1e6:6.1f} |")
    print(f"\naggregate: {rows['runs']} complete runs of {args.runs} in {seconds:.2f} s")


if __name__ == "__main__":
    main()
