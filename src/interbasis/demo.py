"""A one-minute LIB-vs-PCA demo of the library on modular addition, offline and on the CPU.

Usage::

    python -m interbasis.demo                 # p = 31, prints a comparison table
    python -m interbasis.demo --p 23 --steps 3000 --out demo_summary.json

Trains an MLP on one-hot (a, b) -> (a + b) mod p with half of the pairs held out, builds the neuron,
PCA and LIB graphs with ``interbasis.build_graph``, runs the node and edge ablations on the held-out
pairs, and prints the section-7 metrics side by side. The full transformer pipeline of the paper is
``python -m interbasis.run`` (its own module).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from interbasis import build_graph, edge_ablation, node_ablation_curve
from interbasis.metrics import summarize

NODE_LAYERS = ["0", "2", "output"]


def modular_addition(p: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-hot inputs (p*p, 2p), labels, and a random half of the pairs for training."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    inputs = torch.cat([nn.functional.one_hot(a, p), nn.functional.one_hot(b, p)], 1).float()
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    return inputs, (a + b) % p, order[: p * p // 2]


def train(inputs, labels, train_index, hidden: int, steps: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    p = labels.max().item() + 1
    model = nn.Sequential(nn.Linear(inputs.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, p))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    x, y = inputs[train_index], labels[train_index]
    for step in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if step % 500 == 0 and not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}")
    return model.double()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="LIB vs PCA vs neurons on modular addition")
    parser.add_argument("--p", type=int, default=31, help="modulus")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (tiny models: more threads add overhead)")
    parser.add_argument("--out", type=Path, help="write the metrics of every method as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    inputs, labels, train_index = modular_addition(args.p, args.seed)
    model = train(inputs, labels, train_index, args.hidden, args.steps, args.seed)
    test_mask = torch.ones(len(labels), dtype=torch.bool)
    test_mask[train_index] = False
    test = (inputs[test_mask].double(), labels[test_mask])
    with torch.no_grad():
        accuracy = (model(test[0]).argmax(-1) == test[1]).double().mean().item()
    print(f"trained MLP {inputs.shape[1]}-{args.hidden}-{args.p} for {args.steps} steps: "
          f"held-out accuracy {accuracy:.3f} ({time.perf_counter() - start:.0f} s)")

    results = {}
    for method in ("neuron", "pca", "lib"):
        graph = build_graph(model, inputs[train_index], NODE_LAYERS, method=method)
        curves = [node_ablation_curve(model, graph, "2", test)]
        edges = [edge_ablation(model, graph, i, test, delta=0.001) for i in range(2)]
        results[method] = summarize(graph, curves, edges)
    print_table(results)
    print(f"done in {time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"metrics written to {args.out}")
    return results


def print_table(results: dict[str, dict]) -> None:
    keys = ["rank/basis/0", "rank/basis/2", "sparsity/lambda_99/2", "ablation/k_required@0.001/2",
            "sparsity/edges_99/0->2", "sparsity/edges_99/2->output",
            "ablation/edges_required@0.001/0->2", "ablation/edges_required@0.001/2->output",
            "ablation/edges_required@0.001/total"]
    methods = list(results)
    print(f"\n{'metric':<42}" + "".join(f"{m:>10}" for m in methods))
    for key in keys:
        print(f"{key:<42}" + "".join(f"{results[m].get(key, float('nan')):>10.4g}"
                                     for m in methods))


if __name__ == "__main__":
    main()
