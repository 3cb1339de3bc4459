"""Float32 Jacobians (``jacobian_dtype``) and sketched M' (``n_probes``) against exact float64.

Usage::

    python benchmarks/bench_precision.py                     # dtype table, three models
    python benchmarks/bench_precision.py --probes 4 16 64    # also the n_probes table

Models: the committed seed-0 checkpoints of the modadd paper transformer (its 3,830 train pairs),
the Fashion-MNIST MLP (the first 5,000 train images; skipped without the dataset) and the tiny
GPT (16 random character windows of 64, one stochastic source, as its experiment;
``tiny_gpt_exact``: 8 windows of 16, exact sources, the fair reference for n_probes). Each row is a
LIB build against the all-float64 exact build: the relative error of the leading Lambda (those
above 1e-4 of the largest, docs/method.md §9), the change of the kept rank, the relative Frobenius
error of every edge matrix (worst transition; over the features both builds kept), and the build
time. Load matters: run it alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from interbasis import build_graph

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "results" / "checkpoints"


def modadd() -> tuple:
    from interbasis.data.modadd import make_modadd_split
    from interbasis.training.modadd import model_from_checkpoint

    (path,) = sorted((CHECKPOINTS / "modadd").glob("modadd-seed0-*.pt"))
    tokens = make_modadd_split().train_tokens
    layers = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
              "output"]
    return model_from_checkpoint(path), tokens, layers, {}


def vision() -> tuple | None:
    from interbasis.data.vision import load_image_split
    from interbasis.training.vision import model_from_checkpoint

    try:
        data = load_image_split("fashion_mnist", "/usr/share/datasets/fashion-mnist")
    except (FileNotFoundError, OSError):
        return None
    (path,) = sorted((CHECKPOINTS / "vision").glob("vision-seed0-*.pt"))
    return model_from_checkpoint(path), data.split("train")[0][:5000], ["0", "2", "4", "output"], {}


def tiny_gpt() -> tuple:
    from interbasis.training.tiny_gpt import model_from_checkpoint

    (path,) = sorted((CHECKPOINTS / "tiny_gpt").glob("tiny_gpt-seed0-*.pt"))
    model = model_from_checkpoint(path)
    vocab = model.cfg.d_vocab if hasattr(model, "cfg") else 65
    windows = torch.randint(0, vocab, (16, 64), generator=torch.Generator().manual_seed(0))
    layers = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre",
              "blocks.1.hook_resid_mid", "ln_final", "output"]
    return model, windows, layers, {"n_sources": 1, "batch_size": 16}


def tiny_gpt_exact() -> tuple:
    """The tiny GPT on 8 windows of 16 with exact sources: the reference n_probes sketches."""
    model, windows, layers, _ = tiny_gpt()
    return model, windows[:8, :16], layers, {"batch_size": 8}


def compare(exact, other) -> tuple[float, int, float]:
    """(max relative error of the leading Lambda, max |rank change|, worst edge error)."""
    lam, ranks, edges = 0.0, 0, 0.0
    for a, b in zip(exact.layers, other.layers):
        lead = a.eigenvalues > 1e-4 * a.eigenvalues.max()
        k = min(int(lead.sum()), b.eigenvalues.numel())
        lam = max(lam, ((b.eigenvalues[:k] - a.eigenvalues[:k]).abs()
                        / a.eigenvalues[:k]).max().item())
        ranks = max(ranks, abs(a.rank - b.rank))
    for a, b in zip(exact.edges, other.edges):
        rows, cols = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])  # common features
        a, b = a[:rows, :cols], b[:rows, :cols]
        edges = max(edges, ((b - a).norm() / a.norm()).item())
    return lam, ranks, edges


def timed_build(model, data, layers, **kwargs):
    start = time.perf_counter()
    graph = build_graph(model, data, layers, method="lib", **kwargs)
    return graph, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, nargs="*", default=[],
                        help="also build with n_probes = each of these")
    parser.add_argument("--models", nargs="+", default=["modadd", "vision", "tiny_gpt"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generic", action="store_true",
                        help="no closed-form fast paths (n_probes sketches generic sections only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"LIB builds against exact float64, {args.threads} thread(s)"
          + (", generic autograd path" if args.generic else ""))
    print(f"{'model':<9} {'setting':<22} {'seconds':>8} {'Lambda rel':>10} {'rank diff':>9} "
          f"{'edges rel':>10}")
    for name in args.models:
        case = {"modadd": modadd, "vision": vision, "tiny_gpt": tiny_gpt,
                "tiny_gpt_exact": tiny_gpt_exact}[name]()
        if case is None:
            print(f"{name:<9} (skipped: no data)")
            continue
        model, data, layers, kwargs = case
        kwargs["fast_paths"] = not args.generic
        exact, seconds = timed_build(model, data, layers, **kwargs)
        print(f"{name:<9} {'float64 exact':<22} {seconds:>8.2f} {'-':>10} {'-':>9} {'-':>10}")
        settings = [("jacobian float32", dict(jacobian_dtype=torch.float32))]
        settings += [(f"n_probes={k}", dict(n_probes=k)) for k in args.probes]
        for label, extra in settings:
            graph, seconds = timed_build(model, data, layers, **kwargs, **extra)
            lam, ranks, edges = compare(exact, graph)
            print(f"{name:<9} {label:<22} {seconds:>8.2f} {lam:>10.2e} {ranks:>9d} "
                  f"{edges:>10.2e}", flush=True)


if __name__ == "__main__":
    main()
