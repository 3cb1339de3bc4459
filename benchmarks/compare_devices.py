"""Does ``device=cuda`` give the ``device=cpu`` results? Compare the runs of two results stores made
by the same commands on two devices (benchmarks/gpu_check.sh), within a tolerance, where
compare_stores.py asks for bit-identical results of two code versions.

    python benchmarks/compare_devices.py STORE_CPU STORE_DEV --device cuda --json out.json

Each run ``runs/<experiment>/<name>`` of STORE_CPU is paired with the run of STORE_DEV named with
``device=cpu`` replaced by ``device=<--device>``. Summary metrics (timing keys aside, and
``train/steps_trained_now``: of two runs sharing a model cache the first trains, the second
loads; the checkpoint's name says it is the same model): integers and strings (ranks,
lambda_99, k_required, edges_required, ...) must be equal, floats within ``--rtol`` of the
larger magnitude (1e-6; NaN equals NaN). Graphs: every node layer's rank (the
basis width) equal, its Lambda and every transition's edges within ``--graph-rtol`` (1e-8) of
their largest value; both builds are float64, so only the order of the sums differs.
Prints one line per pair and exits 1 when anything is off.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_stores import TIMING  # noqa: E402  (benchmarks/ is not a package)
from interbasis.basis import load_graph  # noqa: E402

NOT_RESULTS = ("train/steps_trained_now",)  # whether the model was trained now, not a result


def summary_problems(a: dict, b: dict, rtol: float) -> list[str]:
    """Keys whose values differ beyond the tolerance (timing keys aside)."""
    problems = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if key.startswith(TIMING) or key in NOT_RESULTS:
            continue
        if isinstance(x, float) and isinstance(y, float | int) and not isinstance(y, bool):
            y = float(y)
            if (math.isnan(x) and math.isnan(y)) or abs(x - y) <= rtol * max(abs(x), abs(y)):
                continue
        elif x == y:
            continue
        problems.append(f"{key}: {x} vs {y}")
    return problems


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = a.abs().max().item()
    return (a - b).abs().max().item() / scale if scale > 0 else (a - b).abs().max().item()


def graph_problems(a: Path, b: Path, rtol: float) -> tuple[list[str], float]:
    """Rank, Lambda and edge differences of two stored graphs, and the largest relative one."""
    ga, gb = load_graph(a), load_graph(b)
    problems, worst = [], 0.0
    if len(ga.layers) != len(gb.layers):
        return [f"{len(ga.layers)} vs {len(gb.layers)} node layers"], math.inf
    for x, y in zip(ga.layers, gb.layers):
        if x.C.shape != y.C.shape:
            problems.append(f"{x.name}: basis {tuple(x.C.shape)} vs {tuple(y.C.shape)}")
            continue
        error = relative(x.eigenvalues, y.eigenvalues)
        worst = max(worst, error)
        if not error <= rtol:
            problems.append(f"{x.name}: Lambda differs by {error:.1e} of its largest")
    for index, (x, y) in enumerate(zip(ga.edges or [], gb.edges or [])):
        if x.shape != y.shape:
            problems.append(f"edges {index}: {tuple(x.shape)} vs {tuple(y.shape)}")
            continue
        error = relative(x, y)
        worst = max(worst, error)
        if not error <= rtol:
            problems.append(f"edges {index}: differ by {error:.1e} of the largest")
    return problems, worst


def compare(store_cpu: Path, store_dev: Path, device: str, rtol: float = 1e-6,
            graph_rtol: float = 1e-8) -> list[dict]:
    pairs = []
    for run in sorted((store_cpu / "runs").glob("*/*")):
        if "device=cpu" not in run.name or not (run / "summary.json").is_file():
            continue
        other = store_dev / "runs" / run.parent.name / run.name.replace("device=cpu",
                                                                         f"device={device}")
        row: dict = {"run": f"{run.parent.name}/{run.name}", "device": device}
        if not (other / "summary.json").is_file():
            row["problems"] = [f"no complete run at {other}"]
            pairs.append(row)
            continue
        a = json.loads((run / "summary.json").read_text())
        b = json.loads((other / "summary.json").read_text())
        row["summary_keys"] = len(set(a) | set(b))
        row["problems"] = summary_problems(a, b, rtol)
        for graph in sorted(run.glob("graph_*.pt")):
            problems, worst = graph_problems(graph, other / graph.name, graph_rtol)
            row["problems"] += [f"{graph.name}: {p}" for p in problems]
            row[f"{graph.stem}_max_rel_diff"] = worst
        pairs.append(row)
    if not pairs:
        pairs.append({"run": str(store_cpu), "problems": ["no complete device=cpu run found"]})
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store_cpu", type=Path)
    parser.add_argument("store_dev", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--graph-rtol", type=float, default=1e-8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    pairs = compare(args.store_cpu, args.store_dev, args.device, args.rtol, args.graph_rtol)
    print(f"device=cpu vs device={args.device}: summaries within {args.rtol:g} (integers "
          f"equal), Lambda and edges within {args.graph_rtol:g} of their largest")
    for row in pairs:
        diffs = {k: v for k, v in row.items() if k.endswith("_max_rel_diff")}
        status = "EQUAL" if not row["problems"] else "DIFFERENT: " + "; ".join(row["problems"])
        print(f"{row['run']}: {status} " + " ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(pairs, indent=1) + "\n")
    return 1 if any(row["problems"] for row in pairs) else 0


if __name__ == "__main__":
    sys.exit(main())
