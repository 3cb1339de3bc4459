"""What a model family is to the pipeline: :class:`Family` (one per family, found by the registry
``interbasis.families``) and :class:`Prepared` (what its ``prepare`` hands the run).

A family module (``interbasis.training.<name>``) defines ``FAMILY_SPEC = Family(...)`` and never
imports the pipeline; the pipeline looks the family up by ``model.family`` in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pandas as pd
from torch import Tensor, nn

from interbasis.config import RunConfig

if TYPE_CHECKING:
    from interbasis.basis.types import Graph

Config = TypeVar("Config", bound=RunConfig)

Analysis = Callable[[nn.Module, "Graph"], dict[str, pd.DataFrame | float | int]]


@dataclass
class Prepared:
    """A family's model and data for one run."""

    model: nn.Module
    basis_inputs: Tensor  # inputs the basis is built on (cfg.method.basis_split)
    ablation_data: tuple[Tensor, Tensor]  # (inputs, targets) the ablations are scored on
    score: str = "accuracy"
    summary: dict[str, Any] = field(default_factory=dict)  # the family's own summary numbers
    # Analysis of the finished graph (e.g. Fourier purity of modular-addition features, mean
    # feature value per image class): each table is written as <name>.csv, and plain numbers
    # (one per run) join the summary.
    analyse: Analysis | None = None
    checkpoint: Path | None = None  # the model's cache entry (its snapshots lie beside it)
    curve: dict[str, list] = field(default_factory=dict)  # the training curve (checkpoint's)
    # Tables over training, filled by the pipeline's over-training stage (the family's
    # ``over_training``, then the LLC at every snapshot): name -> table with a "step" column.
    history: dict[str, pd.DataFrame] = field(default_factory=dict)
    # A separate, larger set of inputs for the means and Grams (LMs: data.gram_samples); None: the
    # basis inputs.
    gram_inputs: Tensor | None = None


def no_relu_layers(model: nn.Module) -> list[str]:
    return []


@dataclass(frozen=True)
class Family(Generic[Config]):
    """One model family: its schema, how a run gets its model and data, and what else it measures.

    - ``schema``: the family's run config (a :class:`~interbasis.config.RunConfig` subclass with
      its own model, data and train sections), the one source of its defaults.
    - ``prepare(cfg)``: the trained (cached) or loaded model, the basis inputs, the scored
      ablation data and the family's summary numbers.
    - ``relu_layers(model)``: modules whose input is a ReLU's output (``"output"`` when the model
      ends in one): their firing patterns give degeneracy/relu_sync/<layer> (docs/method.md §7).
    - ``over_training(cfg, prepared)``: tables over training, each with a ``step`` column,
      written as <name>.csv and logged to W&B row by row at that step (e.g. degeneracy at every
      training snapshot, the toy's training curve).
    - ``tiny``: what ``debug=tiny`` changes for this family (a nested dict of config values over
      the schema's defaults, any section: a small model, data and training that run in seconds);
      ``config.register_defaults`` hands it to Hydra as ``shrink/tiny_<name>``.
    """

    name: str
    prepare: Callable[[Config], Prepared]
    schema: type[Config]
    relu_layers: Callable[[nn.Module], list[str]] = no_relu_layers
    over_training: Callable[[Config, Prepared], dict[str, pd.DataFrame]] | None = None
    tiny: dict[str, Any] = field(default_factory=dict)


def graph_settings(cfg: RunConfig) -> dict[str, Any]:
    """The run config's method section as ``build_graph``'s keywords (written once: the run's
    graph and the graphs over training are built alike)."""
    import torch

    method = cfg.method
    return dict(method=method.name, center=method.center,
                truncation_threshold=method.truncation_threshold,
                integration=method.integration, n_intervals=method.n_intervals,
                n_sources=method.n_sources, seed=cfg.seed, batch_size=method.batch_size,
                jacobian_gram=method.jacobian_rank or None, max_memory=method.max_memory,
                device=cfg.device, jacobian_dtype=getattr(torch, method.jacobian_dtype),
                n_probes=method.n_probes, split=method.rank_split)
