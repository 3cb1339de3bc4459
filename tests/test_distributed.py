"""One build across torch.distributed ranks (Gloo, 2 CPU processes) equals the single-process build.

Shards are unequal and cut across batch boundaries; the MLP runs the linearized fast path and the
generic autograd path with M' probes, the tiny GPT the dense and generic paths with a stochastic
source, so every kind of sum and random draw is merged across ranks. With a separate Gram set
(``gram_inputs``) each rank passes its shard of it too, cut elsewhere than the data. Split by
output features (``split="features"``) every rank passes all the data. The checkpointed builds
resume from the merged stage files and from the shards' partial sums alone, bit-identical, and
a changed Gram shard on one rank resumes nothing.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from interbasis.basis import build_graph, load_graph
from interbasis.basis.types import Graph
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig
from interbasis.ranks import rank_inputs

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


class Case(NamedTuple):
    """One build: ``cut`` is where rank 0's shard of the data ends (None: every rank passes all of
    it, ``split="features"``), ``gram_cut`` the same for the separate Gram set ``gram``."""

    model: nn.Module
    data: torch.Tensor
    layers: list[str]
    kwargs: dict
    cut: int | None
    gram: torch.Tensor | None = None
    gram_cut: int | None = None

    def shard(self, rank: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _cut(self.data, self.cut, rank), _cut(self.gram, self.gram_cut, rank)


def _cut(tensor: torch.Tensor | None, cut: int | None, rank: int) -> torch.Tensor | None:
    if tensor is None or cut is None:
        return tensor
    return tensor[:cut] if rank == 0 else tensor[cut:]


def cases() -> dict[str, Case]:
    data = torch.randn(400, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gram = torch.randn(700, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    gpt_data = torch.randint(0, TINY.d_vocab, (30, TINY.n_ctx),
                             generator=torch.Generator().manual_seed(3))
    gpt_gram = torch.randint(0, TINY.d_vocab, (50, TINY.n_ctx),
                             generator=torch.Generator().manual_seed(6))
    gpt_kwargs = dict(batch_size=7, n_sources=1, seed=2)
    features = dict(split="features")
    return {
        "mlp": Case(mlp(), data, MLP_LAYERS, dict(batch_size=64), 150),
        "mlp_probes": Case(mlp(), data[:90], MLP_LAYERS,
                           dict(batch_size=32, fast_paths=False, n_probes=6, seed=4), 37),
        "gpt": Case(tiny_gpt(), gpt_data, HOOKS, gpt_kwargs, 11),
        # a separate Gram set, cut elsewhere than the data (shards of 260/440 and 150/250)
        "mlp_gram": Case(mlp(), data, MLP_LAYERS, dict(batch_size=64), 150, gram, 260),
        "gpt_gram": Case(tiny_gpt(), gpt_data, HOOKS, gpt_kwargs, 11, gpt_gram, 19),
        # every rank holds all the data and computes its share of each section's outputs
        "mlp_features": Case(mlp(), data, MLP_LAYERS, dict(batch_size=64, **features), None),
        "mlp_features_generic": Case(mlp(), data[:90], MLP_LAYERS,
                                     dict(batch_size=32, fast_paths=False, **features), None,
                                     gram[:200]),
        "gpt_features": Case(tiny_gpt(), gpt_data, HOOKS, {**gpt_kwargs, **features}, None),
        # NGF: the shares are of the final layer's features (the Jacobian to the output)
        "mlp_features_ngf": Case(mlp(), data[:90], MLP_LAYERS,
                                 dict(batch_size=32, method="ngf", **features), None),
    }


CHECKPOINTED = ("mlp", "mlp_gram", "mlp_features")


def _worker(rank: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD)
    try:
        for name, case in cases().items():
            shard, gram = case.shard(rank)
            checkpoint = Path(out) / f"stages_{name}" if name in CHECKPOINTED else None

            build = partial(build_graph, case.model, shard, case.layers, checkpoint=checkpoint,
                            gram_inputs=gram, **case.kwargs)
            build().save(Path(out) / f"{name}.rank{rank}.pt")
            if checkpoint is None:
                continue
            build().save(Path(out) / f"{name}_resumed.rank{rank}.pt")
            dist.barrier()
            if rank == 0:  # keep only the shards' partial sums
                for path in checkpoint.glob("*.pt"):
                    if ".shard" not in path.name:
                        path.unlink()
            dist.barrier()
            build().save(Path(out) / f"{name}_shards.rank{rank}.pt")
            if gram is not None:  # rank 1's Gram shard changes: no stage may be resumed
                changed = gram + 0.5 if rank == 1 else gram
                build(gram_inputs=changed).save(Path(out) / f"{name}_changed.rank{rank}.pt")
        # a run's inputs as ranks.build shards them (unequal: 200/199 samples, 350/349 Gram)
        case = cases()["mlp_gram"]
        prepared = SimpleNamespace(basis_inputs=case.data[:399], gram_inputs=case.gram[:699])
        shard, gram = rank_inputs(prepared)
        build_graph(case.model, shard, case.layers, gram_inputs=gram, **case.kwargs).save(
            Path(out) / f"run_gram.rank{rank}.pt")
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


@pytest.mark.parametrize("name", list(cases()))
def test_two_ranks_build_the_single_process_graph(distributed_graphs, name):
    case = cases()[name]
    single = build_graph(case.model, case.data, case.layers, gram_inputs=case.gram,
                         **case.kwargs)
    ranks = [load_graph(distributed_graphs / f"{name}.rank{rank}.pt") for rank in range(WORLD)]
    assert ranks[0].settings["n_samples"] == single.settings["n_samples"]
    assert ranks[0].settings["ranks"] == WORLD
    assert ranks[0].settings["split"] == case.kwargs.get("split", "data")
    assert_close(ranks[0], single)
    assert_identical(ranks[1], ranks[0])  # every rank holds the same bases and edges


@pytest.mark.parametrize("name", CHECKPOINTED)
def test_distributed_build_resumes_from_merged_and_from_shard_files(distributed_graphs, name):
    first = load_graph(distributed_graphs / f"{name}.rank0.pt")
    for kind in ("resumed", "shards"):
        for rank in range(WORLD):
            assert_identical(load_graph(distributed_graphs / f"{name}_{kind}.rank{rank}.pt"),
                             first)
    stages = sorted(path.name for path in (distributed_graphs / f"stages_{name}").glob("*.pt"))
    assert "edges0.shard0of2.pt" in stages and "basis0.shard1of2.pt" in stages
    # split by data every rank keeps its shard's statistics; by features rank 0 computes them
    assert ("statistics.shard1of2.pt" in stages) == (cases()[name].cut is not None)


def test_a_changed_gram_shard_is_not_resumed(distributed_graphs):
    case = cases()["mlp_gram"]
    changed = torch.cat([case.gram[:case.gram_cut], case.gram[case.gram_cut:] + 0.5])
    single = build_graph(case.model, case.data, case.layers, gram_inputs=changed, **case.kwargs)
    graph = load_graph(distributed_graphs / "mlp_gram_changed.rank0.pt")
    assert_close(graph, single)
    assert relative(graph.layers[1].mean, load_graph(
        distributed_graphs / "mlp_gram.rank0.pt").layers[1].mean) > 1e-3


def test_a_run_shards_its_gram_set_like_its_basis_inputs(distributed_graphs):
    case = cases()["mlp_gram"]
    single = build_graph(case.model, case.data[:399], case.layers, gram_inputs=case.gram[:699],
                         **case.kwargs)
    graph = load_graph(distributed_graphs / "run_gram.rank0.pt")
    assert graph.settings["n_samples"] == 699
    assert_close(graph, single)


def test_split_must_be_known_and_features_need_exact_rows():
    model, data = mlp(), torch.zeros(4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="split must be one of"):
        build_graph(model, data, MLP_LAYERS, split="samples")
    with pytest.raises(ValueError, match="n_probes cannot be split"):
        build_graph(model, data, MLP_LAYERS, split="features", n_probes=4)


def test_a_different_seed_draws_different_sources_and_the_same_seed_the_same():
    model, data, layers, kwargs, _, _, _ = cases()["gpt"]
    a = build_graph(model, data, layers, **kwargs)
    b = build_graph(model, data, layers, **{**kwargs, "batch_size": 4})  # batching: no effect
    c = build_graph(model, data, layers, **{**kwargs, "seed": 9})
    assert_close(b, a, 1e-12)
    assert relative(c.edges[0], a.edges[0]) > 1e-6
