"""``build_graph``: node-layer bases and the interaction graph of a model, in one call.

Usage::

    graph = interbasis.build_graph(model, data, ["0", "2", "output"], method="lib")
    graph.layers[0].C, graph.edges[0]

Passes over the data: one forward pass for the statistics of every node layer, then per section,
from the last backwards, one Jacobian pass for M' (LIB's basis; PCA and neuron bases only when
``jacobian_gram=True``) and one for the edges. Jacobian rows come from the model's closed forms
where it offers them (linearized.py, dense.py), else from ``vmap(vjp)`` (jacobian.py), in chunks
that fit the memory budget (memory.py).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TypeVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from interbasis.basis import bases, distributed, methods, ngf
from interbasis.basis.ablation import check_device
from interbasis.basis.checkpoint import BuildCheckpoint, shard_mean, shard_sum
from interbasis.basis.dense import DenseJacobian, dense_rows
from interbasis.basis.eigh_device import on_build_device
from interbasis.basis.fold import frozen_folded_copy
from interbasis.basis.jacobian import (
    MAX_CHUNK_ELEMENTS,
    EdgeSum,
    JacobianGram,
    integration_points,
    jacobian_rows,
)
from interbasis.basis.linearized import (
    LinearizedEdgeSum,
    LinearizedJacobianGram,
    LinearizedSection,
)
from interbasis.basis.memory import Workspace, memory_budget
from interbasis.basis.node_stats import SPLITS, basis_samples, merged_statistics, tqdm_disable
from interbasis.basis.sections import OUTPUT, NodeLayerError, batch_inputs, capture, section
from interbasis.basis.sources import STREAM_EDGES, STREAM_JACOBIAN, SampleSigns
from interbasis.basis.stats import as_positions
from interbasis.basis.types import Graph, NodeLayer

T = TypeVar("T")

DEFAULT_BATCH_SIZE = 2048


class Batches:
    """A re-iterable view of the user's data as model-input batches (float inputs cast to dtype)."""

    def __init__(self, data: Tensor | Iterable, batch_size: int | None, dtype: torch.dtype,
                 device: torch.device):
        if isinstance(data, Iterator):
            raise TypeError("data must be re-iterable (a tensor, a list of batches or a "
                            "DataLoader): build_graph passes over it several times; "
                            "got an iterator")
        if not isinstance(data, (Tensor, Iterable)):
            raise TypeError(f"data must be a tensor of inputs or an iterable of input batches, "
                            f"got {type(data).__name__}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.data, self.dtype, self.device = data, dtype, device
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE

    def __iter__(self) -> Iterator:
        if isinstance(self.data, Tensor):
            chunks = self.data.split(self.batch_size)
        else:
            chunks = (batch_inputs(batch) for batch in self.data)
        for chunk in chunks:
            yield self._prepare(chunk)

    def _prepare(self, inputs: object) -> object:
        if isinstance(inputs, Tensor):
            inputs = inputs.to(self.device)
            return inputs.to(self.dtype) if inputs.is_floating_point() else inputs
        return inputs


@on_build_device  # eigendecompositions on the build's device (basis/eigh_device.py)
def build_graph(
    model: nn.Module,
    data: Tensor | Iterable,
    node_layers: list[str],
    method: str = "lib",
    center: bool = True,
    truncation_threshold: float = 1e-15,
    dtype: torch.dtype = torch.float64,
    integration: str = "gradient",
    n_intervals: int = 0,
    edges: bool = True,
    batch_size: int | None = None,
    n_sources: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool | None = False,
    fast_paths: bool = True,
    jacobian_gram: bool | None = None,
    max_memory: int | float | None = None,
    jacobian_dtype: torch.dtype | None = None,
    n_probes: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    gram_inputs: Tensor | Iterable | None = None,
    split: str = "data",
) -> Graph:
    """Compute the basis of every node layer and (optionally) the edges between consecutive ones.

    Args:
        model: an ``nn.Module``; folded here (``interbasis.fold_bias``) on a copy, never modified.
        data: a tensor of model inputs (split into ``batch_size`` batches) or a re-iterable of
            batches; a batch that is a tuple/list is read as (inputs, ...).
        node_layers: names from ``model.named_modules()`` whose INPUT is a node layer, in model
            order, optionally ending with ``"output"`` (the logits, left unrotated).
        method: ``"lib"``, ``"pca"``, ``"neuron"`` or ``"ngf"`` (basis/ngf.py).
        center: centre the Gram (the paper's setting).
        truncation_threshold: tau; directions with D <= tau (for LIB also Lambda < tau) are
            dropped.
        integration, n_intervals: ``"gradient"`` (the paper), ``"trapezoidal"`` or
            ``"gauss-legendre"`` integrated gradients with n_intervals + 1 points.
        edges: also compute the squared edges of every transition.
        n_sources: None for the exact sum over output positions, or R random +-1 probes.
        seed: seed of the stochastic sources.
        device: where to compute (default: the model's device); results are float64 on CPU.
        progress: progress bars; None shows them only when stderr is a terminal.
        fast_paths: use a section's exact analytic form when the model offers one
            (``linearize_section``, ``section_jacobian``); False forces the generic autograd path
            everywhere.
        jacobian_gram: compute M' of every section (``NodeLayer.jacobian_eigenvalues``, the
            ``rank/jacobian`` metric). None: only where the basis needs it (LIB); PCA and neuron
            bases then do no Jacobian work in the basis step. True: for every method.
        max_memory: bytes one chunk of Jacobian work may use (chunks of samples and output rows
            are cut to fit); None: a safe share of the device's free memory (basis/memory.py).
        jacobian_dtype: dtype of the Jacobian rows and their per-chunk products (e.g.
            ``torch.float32``); statistics, bases, eigendecompositions and the sums of M' and
            the edges over chunks stay in ``dtype``. None: ``dtype``.
        n_probes: None (exact), or K: M' is sketched from K random +-1 probes over all output
            positions and features per sample (unbiased; K vector-Jacobian products instead of
            P_out x r_out). Generic sections and transformer-block closed forms (the other
            closed forms are exact and cheaper). Edges stay exact.
        checkpoint: a folder where every finished stage (statistics, each layer's basis, each
            section's edges) is written atomically; a rerun with the same model, data and
            settings resumes at the first unfinished stage, bit-identical (basis/checkpoint.py).

        gram_inputs: data the means and Grams are computed from instead of ``data`` (the
            authors' separate, larger Gram set for LMs); M' and the edges still come from ``data``.
        split: how the work is shared under ``torch.distributed`` (no effect alone): ``"data"``
            (each rank passes its shard of the samples) or ``"features"`` (each rank passes ALL
            the data and computes the Jacobian rows of its share of every section's output
            features, for when one shard's rows do not fit; not with ``n_probes``).

    Under ``torch.distributed`` (an initialised process group) with ``split="data"``, every rank
    passes its own shard of the data (consecutive pieces in rank order, sizes may differ), and of
    ``gram_inputs`` when given, and gets the graph of all of it: sums over samples are merged in
    float64, decompositions are done on rank 0 and broadcast (basis/distributed.py). Random
    sources are keyed on each sample's global index (basis/sources.py), so the result is the
    single-process one to round-off. With ``split="features"`` M' and the edges are summed over
    the ranks' feature shares instead (the same graph).
    Returns:
        A :class:`Graph`; ``graph.layers[l].C`` is (d, r) and ``graph.edges[l]`` (r_{l+1}, r_l).
    """
    _validate(method, node_layers, truncation_threshold, n_sources)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "features" and n_probes is not None:
        raise ValueError("split='features' needs exact M' rows: a probe mixes every output "
                         "feature, so n_probes cannot be split across ranks (use split='data')")
    if n_probes is not None and (not isinstance(n_probes, int) or n_probes < 1):
        raise ValueError(f"n_probes must be None (exact) or a positive integer, got {n_probes!r}")
    alphas, weights = integration_points(integration, n_intervals)
    folded = frozen_folded_copy(model, dtype)
    if device is None:
        device = next((p.device for p in folded.parameters()), torch.device("cpu"))
    device = check_device(device)
    folded.to(device)
    jacobian_dtype = dtype if jacobian_dtype is None else jacobian_dtype
    if not jacobian_dtype.is_floating_point:
        raise ValueError(f"jacobian_dtype must be a floating dtype, got {jacobian_dtype}")
    jacobian_model = (folded if jacobian_dtype == dtype
                      else copy.deepcopy(folded).to(jacobian_dtype))
    itemsize = torch.empty(0, dtype=jacobian_dtype).element_size()
    max_elements = memory_budget(device, max_memory) // itemsize
    batches = Batches(data, batch_size, dtype, device)
    timings: dict[str, float] = {}
    settings = dict(center=center, truncation_threshold=truncation_threshold,
                    dtype=str(dtype).removeprefix("torch."), integration=integration,
                    fast_paths=fast_paths, jacobian_gram=method == "lib" or bool(jacobian_gram),
                    jacobian_dtype=str(jacobian_dtype).removeprefix("torch."), n_probes=n_probes,
                    n_intervals=n_intervals, n_sources=n_sources, seed=seed, split=split)
    world = distributed.rank_and_size()[1]
    # (not the memory budget: it may differ per GPU, and only cuts the work into chunks)
    distributed.check_same((method, list(node_layers), settings, gram_inputs is None),
                           "build_graph's method, node layers, settings and gram_inputs or not")
    stages = None if checkpoint is None else BuildCheckpoint(
        checkpoint, {**settings, "method": method, "node_layers": list(node_layers),
                     "batch_size": batches.batch_size, "world": world},
        folded, data, gram_inputs)

    start = time.perf_counter()
    gram_batches = batches if gram_inputs is None else Batches(gram_inputs, batch_size, dtype,
                                                                device)
    moments, positions, offset, n_local = merged_statistics(
        folded, gram_batches, node_layers, center, progress, stages, split)
    if gram_inputs is not None:  # the Jacobian's samples (and their random sources) are data's
        offset, n_local = basis_samples(data, split)
    timings["statistics"] = time.perf_counter() - start
    by_features = split == "features" and world > 1

    def sources(index: int, stream: int) -> SampleSigns:
        return SampleSigns(seed, (index, stream), offset)

    n_layers = len(node_layers)
    grams = {name: moments[name].gram(center and name != OUTPUT) for name in node_layers}
    layer_bases: list[bases.Basis | None] = [None] * n_layers
    jacobian_grams: list[Tensor | None] = [None] * n_layers
    edge_list: list[Tensor | None] = [None] * (n_layers - 1)
    last = node_layers[-1]
    if last == OUTPUT:
        layer_bases[-1] = distributed.on_rank_zero(lambda: bases.output_basis(grams[last]),
                                                     f"bases{n_layers - 1}")
    else:
        layer_bases[-1] = distributed.on_rank_zero(lambda: methods.layer_basis(
            method, grams[last], moments[last].mean, None, center, truncation_threshold,
            last=True), f"bases{n_layers - 1}")
    timings["basis"] = timings["edges"] = 0.0
    per_layer: dict[str, dict[str, float]] = {"basis": {}, "edges": {}}  # by section input
    steps = tqdm(range(n_layers - 2, -1, -1), desc=f"{method} sections",
                 disable=tqdm_disable(progress))
    for index in steps:
        name_in, name_out = node_layers[index], node_layers[index + 1]
        C_next = layer_bases[index + 1].C.to(device=device, dtype=dtype)
        start = time.perf_counter()
        saved = None if stages is None else stages.load(f"basis{index}")
        if saved is not None:
            layer_bases[index] = bases.Basis(**saved["basis"])
            jacobian_grams[index] = saved["jacobian_gram"]
        else:
            if methods.needs_jacobian(method) or jacobian_gram:
                # NGF differentiates through the rest of the network (basis/ngf.py); LIB the
                # section
                target, C_target = ngf.jacobian_target(method, node_layers, index, layer_bases)
                gram_of = partial(_jacobian_gram, folded, batches, name_in, target,
                                  alphas=alphas, weights=weights, n_sources=n_sources,
                                  generator=sources(index, STREAM_JACOBIAN), fast=fast_paths,
                                  max_elements=max_elements, jacobian_model=jacobian_model,
                                  n_probes=n_probes)
                if by_features:  # this rank's output features' rows; M' is their sum
                    jacobian_grams[index] = shard_sum(stages, f"basis{index}", partial(
                        _gram_part, gram_of, C_target.to(C_next), moments[name_in].mean.shape[0]))
                else:
                    jacobian_grams[index] = shard_mean(stages, f"basis{index}", n_local, partial(
                        gram_of, C_next=C_target.to(C_next)))
            gram, mean, M = grams[name_in], moments[name_in].mean, jacobian_grams[index]
            layer_bases[index] = distributed.on_rank_zero(partial(
                methods.layer_basis, method, gram, mean, M, center, truncation_threshold,
                seed=1000 * seed + index), f"bases{index}")
            if stages is not None:
                stages.save(f"basis{index}", {"basis": vars(layer_bases[index]),
                                              "jacobian_gram": jacobian_grams[index]})
        timings["basis"] += time.perf_counter() - start
        per_layer["basis"][name_in] = time.perf_counter() - start
        if edges:
            start = time.perf_counter()
            saved = None if stages is None else stages.load(f"edges{index}")
            if saved is not None:
                edge_list[index] = saved["edges"]
            else:
                edges_of = partial(_edges, folded, batches, name_in, name_out,
                                   layer_bases[index], alphas=alphas, weights=weights,
                                   n_sources=n_sources, generator=sources(index, STREAM_EDGES),
                                   fast=fast_paths, max_elements=max_elements,
                                   jacobian_model=jacobian_model)
                if by_features:  # this rank's rows of the edges, the others' rows zero
                    edge_list[index] = shard_sum(stages, f"edges{index}", partial(
                        _edge_rows, edges_of, C_next, layer_bases[index].C.shape[1]))
                else:
                    edge_list[index] = shard_mean(stages, f"edges{index}", n_local,
                                                  partial(edges_of, C_next=C_next))
                if stages is not None:
                    stages.save(f"edges{index}", {"edges": edge_list[index]})
            timings["edges"] += time.perf_counter() - start
            per_layer["edges"][name_in] = time.perf_counter() - start

    def spectrum(name: str, M: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return (bases.gram_spectrum(grams[name], center and name != OUTPUT)[0]
                .sort(descending=True).values, None if M is None else bases.sorted_eigh(M)[0])

    spectra = distributed.on_rank_zero(lambda: [
        spectrum(name, M) for name, M in zip(node_layers, jacobian_grams)], "spectra")
    layers = []
    for index, (name, basis) in enumerate(zip(node_layers, _computed(layer_bases, "basis"))):
        layers.append(NodeLayer(
            name=name, C=basis.C.cpu(), C_pinv=basis.C_pinv.cpu(),
            eigenvalues=basis.eigenvalues.cpu(), mean=moments[name].mean,
            gram_eigenvalues=spectra[index][0], jacobian_eigenvalues=spectra[index][1],
            n_positions=positions[name], has_constant=name != OUTPUT))
    settings.update(n_samples=moments[node_layers[0]].count // positions[node_layers[0]],
                    ranks=world, timings={**timings, "per_layer": per_layer})
    return Graph(layers=layers, edges=_computed(edge_list, "edges") if edges else None,
                 method=method, settings=settings)


def _gram_part(gram_of: partial[Tensor], C_target: Tensor, d_in: int) -> Tensor:
    """This rank's output features' part of M' (d_in, d_in); zero for a rank with none."""
    share = distributed.feature_share(C_target.shape[1])
    if share.stop == share.start:
        return torch.zeros(d_in, d_in, dtype=C_target.dtype)
    return gram_of(C_next=C_target[:, share])


def _edge_rows(edges_of: partial[Tensor], C_next: Tensor, r_in: int) -> Tensor:
    """The edges (r_out, r_in) of this rank's share of the output features, zero elsewhere."""
    share = distributed.feature_share(C_next.shape[1])
    rows = torch.zeros(C_next.shape[1], r_in, dtype=C_next.dtype)
    if share.stop > share.start:
        rows[share] = edges_of(C_next=C_next[:, share])
    return rows


def _computed(found: list[T | None], what: str) -> list[T]:
    """The per-layer results of build_graph's loop, every one of which it has filled in."""
    if any(item is None for item in found):
        raise RuntimeError(f"build_graph left a layer's {what} uncomputed")
    return [item for item in found if item is not None]


def _validate(method: str, node_layers: list[str], tau: float, n_sources: int | None) -> None:
    if method not in bases.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {bases.METHODS}")
    if isinstance(node_layers, str) or not node_layers:
        raise NodeLayerError("node_layers must be a non-empty list of module names")
    if len(node_layers) < 2:
        raise NodeLayerError("at least two node layers are needed (a section between them)")
    if OUTPUT in node_layers[:-1]:
        raise NodeLayerError(f"{OUTPUT!r} can only be the last node layer")
    if len(set(node_layers)) != len(node_layers):
        raise NodeLayerError(f"node layers must be distinct, got {node_layers}")
    if not tau >= 0:
        raise ValueError(f"truncation_threshold must be >= 0, got {tau!r}")
    if n_sources is not None and (not isinstance(n_sources, int) or n_sources < 1):
        raise ValueError(f"n_sources must be None (exact) or a positive integer, got {n_sources!r}")


def _linearized(model: nn.Module, name_in: str, name_out: str) -> LinearizedSection | None:
    """The model's fast-path form of this section, if it offers one (see basis/linearized.py)."""
    linearize = getattr(model, "linearize_section", None)
    return None if linearize is None else linearize(name_in, name_out)


def _dense(model: nn.Module, name_in: str, name_out: str) -> DenseJacobian | None:
    """The model's closed-form per-sample Jacobian of this section, if any (basis/dense.py)."""
    jacobian = getattr(model, "section_jacobian", None)
    return None if jacobian is None else jacobian(name_in, name_out)


def _rows(model, inputs, x, name_in, name_out, C_next, alphas, weights, n_sources, generator,
          dense: DenseJacobian | None, max_elements: int, workspace: Workspace,
          C_in: Tensor | None = None, n_probes: int | None = None):
    """Jacobian rows of one batch: from the closed form when there is one, else vmap(vjp).

    ``C_in`` (closed form only) multiplies the rows on the input side.
    """
    if dense is not None:
        with torch.no_grad():
            yield from dense_rows(dense, x, C_next, alphas, weights, n_sources, generator,
                                  max_elements, C_in, workspace, n_probes)
        return
    yield from jacobian_rows(section(model, inputs, name_in, name_out), x, C_next, alphas,
                             weights, n_sources, generator, max_elements, n_probes)


def _model_dtype(model: nn.Module, default: torch.dtype) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), default)


def _cast(inputs: object, dtype: torch.dtype) -> object:
    """Float model inputs in ``dtype`` (token ids and other inputs unchanged)."""
    if isinstance(inputs, Tensor) and inputs.is_floating_point():
        return inputs.to(dtype)
    return inputs


def _jacobian_gram(model, batches, name_in, name_out, C_next, alphas, weights, n_sources,
                   generator, fast: bool = True, max_elements: int = MAX_CHUNK_ELEMENTS, *,
                   jacobian_model: nn.Module | None = None, n_probes: int | None = None
                   ) -> Tensor:
    """M' of one section; rows come from ``jacobian_model`` (a lower-precision copy of
    ``model``) when given, summed over chunks in ``model``'s dtype; sketched with n_probes."""
    linearized = _linearized(model, name_in, name_out) if fast else None
    if linearized is not None:
        linear_gram = LinearizedJacobianGram(linearized, C_next)
        for inputs in batches:
            with torch.no_grad():
                linear_gram.add_batch(capture(model, inputs, [name_in])[name_in], alphas, weights)
        return linear_gram.result()
    jmodel = model if jacobian_model is None else jacobian_model
    jdtype = _model_dtype(jmodel, C_next.dtype)
    dense = _dense(jmodel, name_in, name_out) if fast else None
    accumulator: JacobianGram | None = None
    workspace, seen = Workspace(), 0
    for inputs in batches:
        with torch.no_grad():
            x = capture(model, inputs, [name_in])[name_in]
        n, p_in, d_in = as_positions(x).shape
        if accumulator is None:
            accumulator = JacobianGram(d_in, x.dtype, x.device)
        accumulator.add_batch(_rows(jmodel, _cast(inputs, jdtype), x.to(jdtype), name_in,
                                    name_out, C_next.to(jdtype), alphas, weights, n_sources,
                                    _shifted(generator, seen), dense, max_elements, workspace,
                                    n_probes=n_probes), n, p_in)
        seen += n
    if accumulator is None:
        raise ValueError(f"no batches to compute the Jacobian Gram of {name_in!r} from")
    return accumulator.result()


def _edges(model, batches, name_in, name_out, basis_in: bases.Basis, C_next, alphas, weights,
           n_sources, generator, fast: bool = True, max_elements: int = MAX_CHUNK_ELEMENTS, *,
           jacobian_model: nn.Module | None = None) -> Tensor:
    """Squared edges of one section (rows from ``jacobian_model`` as in :func:`_jacobian_gram`)."""
    C = basis_in.C.to(C_next)
    C_pinv = basis_in.C_pinv.to(C_next)
    jmodel = model if jacobian_model is None else jacobian_model
    jdtype = _model_dtype(jmodel, C_next.dtype)
    C_next_j, C_pinv_j = C_next.to(jdtype), C_pinv.to(jdtype)
    linearized = _linearized(jmodel, name_in, name_out) if fast else None
    dense = _dense(jmodel, name_in, name_out) if fast and linearized is None else None
    C_in, workspace = C_pinv_j.T, Workspace()
    accumulator: LinearizedEdgeSum | EdgeSum
    if linearized is not None:
        accumulator = LinearizedEdgeSum(linearized, C_next_j, C_pinv_j, max_elements,
                                        total_dtype=C_next.dtype)
    else:
        accumulator = EdgeSum(C_next.shape[1], C.shape[1], C_next.dtype, C_next.device)
    seen = 0
    for inputs in batches:
        with torch.no_grad():
            x = capture(model, inputs, [name_in])[name_in]
        batch_sources = _shifted(generator, seen)
        seen += as_positions(x).shape[0]
        features = as_positions(x) @ C
        # Edges are derivatives of g(f) = section(f C_pinv) C_next at the data's features.
        x_rec = (features @ C_pinv).reshape(x.shape).to(jdtype)
        features, inputs = features.to(jdtype), _cast(inputs, jdtype)
        if isinstance(accumulator, LinearizedEdgeSum):  # the linearized section's form
            with torch.no_grad():
                accumulator.add_batch(x_rec, features, alphas, weights)
            continue
        if dense is not None:  # rows come out as d g / d f directly
            accumulator.add_batch(_rows(jmodel, inputs, x_rec, name_in, name_out, C_next_j,
                                        alphas, weights, n_sources, batch_sources, dense,
                                        max_elements, workspace, C_in), features, None)
            continue
        accumulator.add_batch(_rows(jmodel, inputs, x_rec, name_in, name_out, C_next_j, alphas,
                                    weights, n_sources, batch_sources, None, max_elements,
                                    workspace), features, C_pinv_j)
    return accumulator.result()


def _shifted(generator: torch.Generator | SampleSigns, seen: int
             ) -> torch.Generator | SampleSigns:
    """The sources of a batch whose first sample comes ``seen`` samples into the shard (a plain
    torch.Generator, from direct callers, is consumed in sequence as before)."""
    if isinstance(generator, SampleSigns):
        return dataclasses.replace(generator, offset=generator.offset + seen)
    return generator
