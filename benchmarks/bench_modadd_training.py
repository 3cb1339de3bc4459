"""Full-batch training speed of the modular-addition transformer on the CPU (paper-size model).

Compares the straightforward loop (every position through attention, MLP and unembedding; foreach
AdamW) with the last-position loops, and the step ``interbasis.training.modadd`` runs (fused AdamW
with ``forward_fast`` on one thread, ``forward`` on more), at 1 and 2 torch threads, on the 3830
train pairs:

    python benchmarks/bench_modadd_training.py            # ~3 minutes on 2 cores
    python benchmarks/bench_modadd_training.py --compile  # also torch.compile (adds ~1 minute)

Measured here (torch 2.13, 2 shared cores): torch.compile of the loss gained ~1.2x over the plain
fast loop before the biases moved into F.linear (addmm), and nothing after, so train() does not
compile.

Timings are wall-clock; on a shared machine other processes slow them down, so each row also shows
its best window of ``--window`` steps, the better estimate of the unloaded speed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from interbasis.data.modadd import make_modadd_split
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.training.modadd import ModAddTrainConfig, make_optimizer, make_train_step

Step = Callable[[Tensor, Tensor, float], Tensor]


def loop_step(optimizer: torch.optim.Optimizer,
              loss_of: Callable[[Tensor, Tensor], Tensor]) -> Step:
    """One full-batch update at ``lr`` of whatever ``loss_of`` computes."""

    def step(tokens: Tensor, labels: Tensor, lr: float) -> Tensor:
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_of(tokens, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def straightforward_step(model: ModAddTransformer) -> Step:
    """The baseline: all positions computed, logits sliced afterwards, default (foreach) AdamW."""
    cfg = ModAddTrainConfig()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    return loop_step(optimizer, lambda tokens, labels: F.cross_entropy(
        model.forward_all_positions(tokens)[:, -1].double(), labels))


def last_position_step(model: ModAddTransformer) -> Step:
    """The hook-respecting ``forward`` (last position only) with fused AdamW."""
    return loop_step(make_optimizer(model, ModAddTrainConfig()), lambda tokens, labels:
                     F.cross_entropy(model(tokens).double(), labels))


def fast_step(model: ModAddTransformer) -> Step:
    """``forward_fast`` (per-vocabulary attention tables) with fused AdamW."""
    return loop_step(make_optimizer(model, ModAddTrainConfig()), lambda tokens, labels:
                     F.cross_entropy(model.forward_fast(tokens).double(), labels))


def train_step(model: ModAddTransformer) -> Step:
    """Exactly the step ``train()`` runs at the current thread count (``training_forward``)."""
    return make_train_step(model, make_optimizer(model, ModAddTrainConfig()))


def compiled_fast_step(model: ModAddTransformer) -> Step:
    """The fast step with the loss under torch.compile (not used by train(): no faster here)."""
    return loop_step(make_optimizer(model, ModAddTrainConfig()), torch.compile(
        lambda tokens, labels: F.cross_entropy(model.forward_fast(tokens).double(), labels)))


def measure(make_step: Callable[[ModAddTransformer], Step], tokens: Tensor, labels: Tensor,
            steps: int, warmup: int, window: int) -> tuple[float, float, float]:
    """(steps/s over all timed steps, best window's steps/s, seconds of warm-up incl. compiling)."""
    step = make_step(ModAddTransformer(ModAddTransformerConfig(), seed=0))
    started = time.perf_counter()
    for _ in range(warmup):
        step(tokens, labels, 1e-3)
    warmup_s = time.perf_counter() - started
    window_rates = []
    total = 0.0
    for _ in range(steps // window):
        started = time.perf_counter()
        for _ in range(window):
            step(tokens, labels, 1e-3)
        elapsed = time.perf_counter() - started
        window_rates.append(window / elapsed)
        total += elapsed
    return (steps // window) * window / total, max(window_rates), warmup_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    data = make_modadd_split()
    tokens, labels = data.train_tokens, data.train_labels
    loops: dict[str, Callable[[ModAddTransformer], Step]] = {
        "straightforward: all positions, foreach AdamW": straightforward_step,
        "forward (last position) + fused AdamW": last_position_step,
        "forward_fast + fused AdamW": fast_step,
        "train()'s step (picks by thread count)": train_step,
    }
    if args.compile:
        loops["forward_fast + fused AdamW + torch.compile"] = compiled_fast_step

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {len(tokens)} train pairs, "
          f"{args.steps} timed steps per row, load average {os.getloadavg()[0]:.2f}")
    best_title = f"best {args.window}-step window"
    header = f"| {'loop':46} | threads | steps/s | {best_title} | speed-up | warm-up s |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        baseline = None
        for name, make_step in loops.items():
            rate, best, warmup_s = measure(make_step, tokens, labels, args.steps, args.warmup,
                                           args.window)
            baseline = baseline or rate
            print(f"| {name:46} | {threads:7d} | {rate:7.2f} | {best:{len(best_title)}.2f} | "
                  f"{rate / baseline:7.2f}x | {warmup_s:9.1f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
