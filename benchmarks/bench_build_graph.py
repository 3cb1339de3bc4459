"""Benchmark of ``build_graph``: time split into statistics, basis and edges, and peak memory.

Usage::

    python benchmarks/bench_build_graph.py              # the full table (N up to 100k)
    python benchmarks/bench_build_graph.py --quick      # N up to 10k
    python benchmarks/bench_build_graph.py --threads 1

Each case runs in a fresh subprocess so that its peak resident memory (ru_maxrss) belongs to that
case alone; "extra MB" is the peak minus the memory in use just before ``build_graph`` (model and
data already built), i.e. the working memory of the computation, which must not grow with N.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

CASES = {
    "mlp": "MLP 64-256-256-10, LIB",
    "resid_mlp": "residual MLP section 129-512-129, LIB",
    "modadd_lib": "modadd paper transformer (seed 0), LIB",
    "modadd_pca": "modadd paper transformer (seed 0), PCA",
}
MODADD_CHECKPOINTS = Path(__file__).resolve().parents[1] / "results" / "checkpoints" / "modadd"


def modadd_case() -> tuple:
    """The committed seed-0 paper checkpoint and its 3,830 train pairs (the paper's basis data)."""
    from interbasis.data.modadd import make_modadd_split
    from interbasis.training.modadd import model_from_checkpoint

    (path,) = sorted(MODADD_CHECKPOINTS.glob("modadd-seed0-*.pt"))
    model = model_from_checkpoint(path).to(torch.float64)
    tokens = make_modadd_split().train_tokens
    layers = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
              "output"]
    return model, tokens, layers


def run_case(case: str, n: int, threads: int, generic: bool = False) -> dict:
    from torch import nn

    import interbasis

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    method = "lib"
    if case.startswith("modadd"):
        model, data, node_layers = modadd_case()
        method = case.removeprefix("modadd_")
    elif case == "mlp":
        model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10))
        data = torch.randn(n, 64)
        node_layers = ["0", "2", "4", "output"]
    else:
        model = ResidualMLP()
        data = torch.randn(n, 128)
        node_layers = ["resid_pre", "resid_post"]
    before_mb = current_rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    graph = interbasis.build_graph(model, data, node_layers, method=method,
                                   fast_paths=not generic)
    total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = after.ru_maxrss / 1024
    timings = {k: v for k, v in graph.settings["timings"].items() if k != "per_layer"}
    return dict(case=case, n=n, total=total, **timings, extra_mb=peak_mb - before_mb,
                user=after.ru_utime - usage.ru_utime, sys=after.ru_stime - usage.ru_stime,
                minflt=after.ru_minflt - usage.ru_minflt,
                ranks=[layer.rank for layer in graph.layers])


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _residual_mlp_class():
    from torch import nn

    from interbasis.basis.linearized import residual_mlp_section

    class ResidualMLP(nn.Module):
        """resid_post = resid_pre + relu(resid_pre W_in + b_in) W_out + b_out, d 128, d_mlp 512."""

        def __init__(self):
            super().__init__()
            self.resid_pre, self.resid_post = nn.Identity(), nn.Identity()
            self.w_in, self.w_out = nn.Linear(128, 512), nn.Linear(512, 128)

        def forward(self, x):
            x = self.resid_pre(x)
            return self.resid_post(x + self.w_out(torch.relu(self.w_in(x))))

        def fold_bias(self):
            folded = FoldedResidualMLP()
            with torch.no_grad():
                folded.w_in.weight.zero_()
                folded.w_in.weight[:512, :128] = self.w_in.weight
                folded.w_in.weight[:512, 128] = self.w_in.bias
                folded.w_in.weight[512, 128] = 1.0  # the constant unit: relu(1) = 1
                folded.w_out.weight.zero_()
                folded.w_out.weight[:128, :512] = self.w_out.weight
                folded.w_out.weight[:128, 512] = self.w_out.bias
            return folded

    class FoldedResidualMLP(nn.Module):
        is_bias_folded = True

        def __init__(self):
            super().__init__()
            self.resid_pre, self.resid_post = nn.Identity(), nn.Identity()
            self.w_in = nn.Linear(129, 513, bias=False)
            self.w_out = nn.Linear(513, 129, bias=False)

        def forward(self, x):
            x = self.resid_pre(torch.cat([x, torch.ones_like(x[..., :1])], -1))
            return self.resid_post(x + self.w_out(torch.relu(self.w_in(x))))

        def linearize_section(self, name_in, name_out):
            if (name_in, name_out) != ("resid_pre", "resid_post"):
                return None
            return residual_mlp_section(self.w_in.weight, self.w_out.weight, torch.relu)

    return ResidualMLP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip N = 100k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--generic", action="store_true",
                        help="force the generic autograd path (no analytic fast paths)")
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # child process: one case, JSON on stdout
        print(json.dumps(run_case(args.case, args.n, args.threads, args.generic)))
        return
    plan = [("mlp", n) for n in (1_000, 10_000, 100_000)] + [("resid_mlp", 3830),
                                                              ("modadd_lib", 3830),
                                                              ("modadd_pca", 3830)]
    if args.quick:
        plan = [(case, n) for case, n in plan if n <= 10_000]
    if args.only:
        plan = [(case, n) for case, n in plan if case in args.only]
    header = (f"{'case':<40} {'N':>7} {'stats s':>8} {'basis s':>8} {'edges s':>8} "
              f"{'total s':>8} {'us/sample':>9} {'extra MB':>9} {'user s':>7} {'sys s':>6} "
              f"{'minflt k':>8}  ranks")
    path = "generic autograd" if args.generic else "analytic fast paths where offered"
    print(f"build_graph benchmark, float64, torch threads {args.threads}, {path}")
    print(header)
    print("-" * len(header))
    for case, n in plan:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n),
                              "--threads", str(args.threads)] + ["--generic"] * args.generic,
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{CASES[case]:<40} {n:>7} {row['statistics']:>8.2f} {row['basis']:>8.2f} "
              f"{row['edges']:>8.2f} {row['total']:>8.2f} {1e6 * row['total'] / n:>9.0f} "
              f"{row['extra_mb']:>9.0f} {row['user']:>7.1f} {row['sys']:>6.1f} "
              f"{row['minflt'] / 1000:>8.0f}  {row['ranks']}", flush=True)


ResidualMLP = _residual_mlp_class()

if __name__ == "__main__":
    main()
