"""One build across torch.distributed ranks (Gloo, 2 CPU processes) equals the single-process build.

Shards are unequal and cut across batch boundaries; the MLP runs the linearized fast path and the
generic autograd path with M' probes, the tiny GPT the dense and generic paths with a stochastic
source, so every kind of sum and random draw is merged across ranks. The MLP build is also
checkpointed: a second call resumes from the merged stage files, a third from the shards'
partial sums alone, both bit-identical.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from interbasis.basis import build_graph, load_graph
from interbasis.basis.types import Graph
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig

MLP_LAYERS = ["0", "2", "4", "output"]
WORLD = 2
# The tiny GPT of test_tiny_gpt.py (not imported: the spawned ranks would import the pipeline)
TINY = TinyGPTConfig(d_vocab=11, n_ctx=6, d_model=8, n_layers=2, n_heads=2, d_mlp=16)
HOOKS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre",
         "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post", "ln_final"]


def tiny_gpt() -> TinyGPT:
    """Float64, every bias and norm parameter moved off its init so folding is exercised."""
    model = TinyGPT(TINY, seed=0).double()
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return model


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(),
                         nn.Linear(10, 4)).double()


def cases() -> dict[str, tuple]:
    """name -> (model, data, node layers, build_graph kwargs, shard cut)."""
    data = torch.randn(400, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gpt_data = torch.randint(0, TINY.d_vocab, (30, TINY.n_ctx),
                             generator=torch.Generator().manual_seed(3))
    return {
        "mlp": (mlp(), data, MLP_LAYERS, dict(batch_size=64), 150),
        "mlp_probes": (mlp(), data[:90], MLP_LAYERS,
                       dict(batch_size=32, fast_paths=False, n_probes=6, seed=4), 37),
        "gpt": (tiny_gpt(), gpt_data, HOOKS, dict(batch_size=7, n_sources=1, seed=2), 11),
    }


def _worker(rank: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD)
    try:
        for name, (model, data, layers, kwargs, cut) in cases().items():
            shard = data[:cut] if rank == 0 else data[cut:]
            checkpoint = Path(out) / f"stages_{name}" if name == "mlp" else None
            graph = build_graph(model, shard, layers, checkpoint=checkpoint, **kwargs)
            graph.save(Path(out) / f"{name}.rank{rank}.pt")
            if checkpoint is None:
                continue
            resumed = build_graph(model, shard, layers, checkpoint=checkpoint, **kwargs)
            resumed.save(Path(out) / f"{name}_resumed.rank{rank}.pt")
            dist.barrier()
            if rank == 0:  # keep only the shards' partial sums
                for path in checkpoint.glob("*.pt"):
                    if ".shard" not in path.name:
                        path.unlink()
            dist.barrier()
            partial = build_graph(model, shard, layers, checkpoint=checkpoint, **kwargs)
            partial.save(Path(out) / f"{name}_shards.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def aligned(C: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """C with each column's sign matched to the reference (eigenvectors are defined up to it)."""
    signs = torch.sign((C * reference).sum(0))
    return C * torch.where(signs == 0, 1.0, signs)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def assert_close(graph: Graph, reference: Graph, tol: float = 1e-9) -> None:
    assert graph.layer_names == reference.layer_names
    for layer, ref in zip(graph.layers, reference.layers):
        assert layer.C.shape == ref.C.shape, layer.name
        errors = {"C": relative(aligned(layer.C, ref.C), ref.C),
                  "C_pinv": relative(aligned(layer.C_pinv.T, ref.C_pinv.T), ref.C_pinv.T),
                  "eigenvalues": relative(layer.eigenvalues, ref.eigenvalues),
                  "mean": relative(layer.mean, ref.mean),
                  "gram": relative(layer.gram_eigenvalues, ref.gram_eigenvalues)}
        if ref.jacobian_eigenvalues is not None:
            errors["M'"] = relative(layer.jacobian_eigenvalues, ref.jacobian_eigenvalues)
        assert max(errors.values()) < tol, (layer.name, errors)
    for index, (edges, ref) in enumerate(zip(graph.edges, reference.edges)):
        assert relative(edges, ref) < tol, (index, relative(edges, ref))


def assert_identical(a: Graph, b: Graph) -> None:
    for x, y in zip(a.layers, b.layers):
        for field in ("C", "C_pinv", "eigenvalues", "mean", "gram_eigenvalues"):
            assert torch.equal(getattr(x, field), getattr(y, field)), (x.name, field)
    assert all(torch.equal(e, f) for e, f in zip(a.edges, b.edges))


@pytest.fixture(scope="module")
def distributed_graphs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distributed")
    mp.start_processes(_worker, args=(str(out / "pg_init"), str(out)), nprocs=WORLD,
                       start_method="spawn")
    return out


@pytest.mark.parametrize("name", ["mlp", "mlp_probes", "gpt"])
def test_two_ranks_build_the_single_process_graph(distributed_graphs, name):
    model, data, layers, kwargs, cut = cases()[name]
    single = build_graph(model, data, layers, **kwargs)
    ranks = [load_graph(distributed_graphs / f"{name}.rank{rank}.pt") for rank in range(WORLD)]
    assert ranks[0].settings["n_samples"] == len(data) and ranks[0].settings["ranks"] == WORLD
    assert_close(ranks[0], single)
    assert_identical(ranks[1], ranks[0])  # every rank holds the same bases and edges


def test_distributed_build_resumes_from_merged_and_from_shard_files(distributed_graphs):
    first = load_graph(distributed_graphs / "mlp.rank0.pt")
    for kind in ("resumed", "shards"):
        for rank in range(WORLD):
            assert_identical(load_graph(distributed_graphs / f"mlp_{kind}.rank{rank}.pt"), first)
    stages = sorted(path.name for path in (distributed_graphs / "stages_mlp").glob("*.pt"))
    assert "statistics.shard1of2.pt" in stages and "edges0.shard0of2.pt" in stages
    shutil.rmtree(distributed_graphs / "stages_mlp")


def test_a_different_seed_draws_different_sources_and_the_same_seed_the_same():
    model, data, layers, kwargs, _ = cases()["gpt"]
    a = build_graph(model, data, layers, **kwargs)
    b = build_graph(model, data, layers, **{**kwargs, "batch_size": 4})  # batching: no effect
    c = build_graph(model, data, layers, **{**kwargs, "seed": 9})
    assert_close(b, a, 1e-12)
    assert relative(c.edges[0], a.edges[0]) > 1e-6
