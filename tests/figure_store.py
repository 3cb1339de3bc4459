"""Test helpers (not a test module): a synthetic results store of runs with random graphs,
curves and analysis tables, from which every figure can be drawn."""


import numpy as np
import pandas as pd
import torch

from interbasis.analysis.partition import eps_from_results, partition_record
from interbasis.basis.types import EdgeAblationResult, Graph, NodeAblationCurve, NodeLayer
from interbasis.metrics import summarize
from interbasis.results import RunDirectory, curves_frame
from site_store import random_fourier_table

LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
          "output"]


def random_graph(method: str, rng: np.random.Generator) -> Graph:
    """Three rotated layers (width 7, rank 6, constant first) and unrotated logits (5)."""
    layers = []
    for name in LAYERS:
        width, rank = (5, 5) if name == "output" else (7, 6)
        C = torch.tensor(rng.normal(size=(width, rank)))
        eigenvalues = torch.tensor(np.sort(rng.uniform(0.1, 10, rank))[::-1].copy())
        layers.append(NodeLayer(name=name, C=C, C_pinv=torch.linalg.pinv(C),
                                eigenvalues=eigenvalues,
                                mean=torch.zeros(width, dtype=torch.float64),
                                gram_eigenvalues=torch.tensor(rng.uniform(0, 5, width)),
                                has_constant=name != "output"))
    edges = [torch.tensor(rng.exponential(size=(b.rank, a.rank)) ** 3)
             for a, b in zip(layers, layers[1:])]
    return Graph(layers=layers, edges=edges, method=method)


def write_run(root, experiment: str, method: str, seed: int, model: str = "modadd",
              halvings: bool = False) -> None:
    rng = np.random.default_rng([seed, method == "lib"])
    graph = random_graph(method, rng)
    ks = list(range(7))
    node_curves = [NodeAblationCurve(layer=name, ks=ks, base_score=1.0,
                                     scores=list(np.minimum(1.0, np.array(ks) / rng.uniform(2, 6))))
                   for name in LAYERS[:-1]]
    edge_results = []
    for name, E in zip(graph.transition_names, graph.edges):
        block = E[:, 1:].flatten() if name.endswith("output") else E[1:, 1:].flatten()
        n = int(rng.integers(2, block.numel()))
        edge_results.append(EdgeAblationResult(
            transition=name, n_required=n, n_possible=block.numel(),
            eps=block.topk(n).values[-1].item(), base_score=1.0, score_at_required=0.9995,
            delta=0.001, evaluations={n: 0.9995, block.numel(): 1.0, n // 2: 0.5, 0: 0.1}))
        if halvings:  # every halving scored, as edge_ablation(curve=True): a step at n
            total = block.numel()
            edge_results[-1].evaluations.update(
                {total >> j: (1.0 if total >> j >= n else 0.1) for j in range(total.bit_length())})
    run_dir = RunDirectory.for_run(root, experiment, f"method={method},seed={seed}")
    run_dir.write_config({"model": {"family": model, "node_layers": LAYERS},
                          "method": {"name": method}, "ablation": {"edge_delta": 0.001}})
    run_dir.write_graph(graph)
    run_dir.write_curves(curves_frame(node_curves, edge_results))
    delta, eps = eps_from_results(graph, edge_results)
    run_dir.write_json("modularity", partition_record(graph, eps, delta))
    run_dir.write_table("fourier", random_fourier_table(graph, rng))
    if model == "vision":
        for name, table in vision_tables(graph, rng).items():
            run_dir.write_table(name, table)
    summary = summarize(graph, node_curves, edge_results)
    summary.update(model=model, method=method, seed=seed, experiment=experiment)
    run_dir.write_summary(summary)


def vision_tables(graph: Graph, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """What a vision run's analysis hook stores: edge-weight curves and class means."""
    weight = []
    for name, E in zip(graph.transition_names, graph.edges):
        values = np.sort(E[:, 1:].flatten().numpy())[::-1]
        weight.append(pd.DataFrame({"transition": name, "n_edges": np.arange(1, len(values) + 1),
                                    "n_possible": len(values),
                                    "fraction": np.cumsum(values) / values.sum()}))
    groups = ["clothing", "clothing", "footwear", "bag"]
    means = pd.DataFrame([{"layer": 2, "feature": f, "class": c, "class_name": f"class {c}",
                           "group": groups[c], "mean": rng.normal(), "count": 10}
                          for f in range(5) for c in range(4)])
    separation = pd.DataFrame({"layer": 2, "feature": range(5),
                               "eta2_groups": rng.uniform(size=5),
                               "eta2_classes": rng.uniform(size=5)})
    return {"edge_weight": pd.concat(weight), "class_means": means,
            "class_separation": separation}


def write_toy_runs(root, ms=(256, 512, 1024), seeds=(0, 1, 2), n: int = 256) -> None:
    """Toy runs whose polysemantic counts follow n^2 / (4m) times a seed-dependent factor."""
    for m in ms:
        for seed in seeds:
            run_dir = RunDirectory.for_run(root, "poly_paper", f"model.m={m},seed={seed}")
            run_dir.write_config({"model": {"family": "poly_toy", "n": n, "m": m,
                                            "node_layers": ["0", "1", "output"]},
                                  "train": {"l1_lambda": 1e-3}})
            count = round(n * n / (4 * m) * (0.8 + 0.2 * seed))
            run_dir.write_table("toy_training", pd.DataFrame(
                {"step": [0, 100, 200], "polysemantic_neurons": [0, count // 2, count]}))
            run_dir.write_summary({"toy/polysemantic_neurons": count, "model": "poly_toy",
                                   "method": "lib", "seed": seed, "experiment": "poly_paper"})


def write_over_training_run(root) -> None:
    """A LIB run that stored degeneracy_over_training.csv (ranks fall as test accuracy rises)."""
    write_run(root, "modadd_degeneracy", "lib", 0)
    run_dir = RunDirectory(root / "runs" / "modadd_degeneracy" / "method=lib,seed=0")
    summary = run_dir.read_summary()
    (run_dir.path / "summary.json").unlink()
    steps = np.arange(0, 500, 100)
    table = {"step": steps, "train_acc": np.ones(5), "test_acc": [0.1, 0.3, 0.9, 0.995, 1.0],
             "degeneracy/relu_sync/blocks.0.mlp.hook_post": [1.0, 0.95, 0.9, 0.85, 0.8]}
    for layer in LAYERS:
        table[f"rank/gram/{layer}"] = 7 - steps // 100
        table[f"rank/basis/{layer}"] = 6 - steps // 100
        table[f"rank/gram_rel/{layer}"] = 6 - steps // 100
        table[f"sparsity/lambda_99/{layer}"] = 5 - steps // 100
        if layer != "output":
            table[f"rank/jacobian/{layer}"] = 7 - steps // 200
    run_dir.write_table("degeneracy_over_training", pd.DataFrame(table))
    summary["degeneracy/relu_sync/blocks.0.mlp.hook_post"] = 0.8
    run_dir.write_summary(summary)


def synthetic_store(root, n_seeds: int, experiment: str = "modadd_paper", model: str = "modadd"):
    for method in ("lib", "pca"):
        for seed in range(n_seeds):
            write_run(root, experiment, method, seed, model)
    if experiment == "modadd_paper":
        write_toy_runs(root)
        write_over_training_run(root)
    return root
