"""The one validated schema of a run's configuration (Hydra composes it; this checks it).

Every field has a type, a range where one makes sense, and a description; unknown keys are errors.
:func:`validate` turns a composed Hydra config into a :class:`RunConfig` or raises
:class:`ConfigError` with one line per problem naming the field, the bad value and what is allowed.

This module holds the sections every run shares (method, ablation, analysis, logger, paths) and
the :class:`RunConfig` base. Each model family declares its own model, data and train sections and
its ``RunConfig`` subclass in its module (``interbasis.training.<name>``), and its
``Family(..., schema=...)`` carries it; ``model.family`` picks the schema (:func:`schemas`, read
from the registry ``interbasis.families`` when first needed: the registry imports the family
modules, which import this one), so a field of another family is an unknown key and error
locations stay plain (``model.d_mlp``, not a union member's name).

This schema is the one source of every default: :func:`register_defaults` hands each family's
defaults to Hydra (config group ``schema``, chosen by ``family`` in conf/config.yaml) before the
YAML files, which hold only choices (``family: modadd``, node layers, paths) and paper deltas,
and each family's ``debug=tiny`` shrink (``Family.tiny``, config group ``shrink``).
So ``--cfg job`` and every run's config.yaml show the complete config, and ``model.d_mlp=64`` on
the command line finds its key without the YAML restating ``d_mlp: 512``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails


class Strict(BaseModel):
    # allow_inf_nan=False: train.lr=inf or a nan tolerance is a typo, never a setting
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelConfig(Strict):
    """What every family's model section has: the family and the node layers.

    A family's section narrows ``family`` to its name (a ``Literal``) and may say which layers its
    configured architecture has (:meth:`blocks`, :meth:`layer_names`) or add checks of its own
    (:meth:`problems`)."""

    family: str = Field(description="model family (a module in interbasis.training)")
    node_layers: list[str] = Field(min_length=2, description="hook points whose input is a node "
                                   "layer, in model order, optionally ending with 'output'")

    def blocks(self) -> int | None:
        """Transformer blocks of the configured model (``blocks.<i>.`` layers); None: no blocks."""
        return None

    def layer_names(self) -> set[str] | None:
        """Every node layer (but ``output``) the configured model has; None: not known here."""
        return None

    def problems(self) -> list[str]:
        """Settings that each fit the schema but not together (one line each): by default, node
        layers the configured architecture does not have (a shrunk model keeps the full-size
        layer names otherwise, and the run fails only once the model is built)."""
        n_blocks, names = self.blocks(), self.layer_names()
        problems = []
        for layer in self.node_layers:
            block = re.match(r"blocks\.(\d+)\.", layer)
            if block and n_blocks is not None and int(block.group(1)) >= n_blocks:
                problems.append(f"model.node_layers: {layer!r} is in block {block.group(1)} but "
                                f"the model has {n_blocks} block(s)")
            elif names is not None and layer != "output" and layer not in names:
                problems.append(f"model.node_layers: the model has no layer {layer!r} (it has "
                                f"{', '.join(sorted(names))} and output)")
        return problems


class MethodConfig(Strict):
    name: Literal["lib", "pca", "neuron", "ngf", "random"] = Field(
        description="basis: LIB, PCA, neurons, LIB by naive gradient flow (basis/ngf.py), or "
        "random (PCA's kept subspace in a Haar-random orthonormal basis, seeded by the run seed)")
    center: bool = Field(True, description="centre the Gram (the paper's setting)")
    truncation_threshold: float = Field(1e-15, ge=0, description="tau: drop eigenvalues below it")
    integration: Literal["gradient", "trapezoidal", "gauss-legendre"] = Field(
        "gradient", description="plain gradient (paper) or integrated gradients")
    n_intervals: int = Field(0, ge=0, description="integration intervals (n + 1 points)")
    n_sources: int | None = Field(None, ge=1, description="stochastic sources over output "
                                  "positions; null = exact")
    basis_split: Literal["train", "test"] = Field("train", description="data the basis is built on")
    batch_size: int = Field(4096, ge=1, description="samples per batch while building the basis")
    jacobian_rank: bool = Field(False, description="also compute the Jacobian Gram M' for PCA and "
                                "neuron bases, for rank/jacobian (degeneracy source 2); LIB "
                                "always has it, and PCA/neuron builds skip all Jacobian work "
                                "in the basis step without it")
    max_memory: float | None = Field(None, gt=0, description="bytes one chunk of Jacobian work may "
                                     "use; null = a safe share of the device's free memory (a "
                                     "quarter on CPU, at most 1 GiB; half on a GPU)")
    jacobian_dtype: Literal["float64", "float32"] = Field(
        "float64", description="dtype of the Jacobian rows and their per-chunk products (float32: "
        "2-3x faster, ~4e-7 relative error in Lambda and edges; sums over chunks, statistics and "
        "bases stay float64)")
    n_probes: int | None = Field(None, ge=1, description="sketch M' from this many random +-1 "
                                 "output probes per sample (unbiased; generic autograd sections "
                                 "and transformer-block closed forms, edges stay exact); null = "
                                 "exact")
    rank_split: Literal["data", "features"] = Field(
        "data", description="under torch.distributed (torchrun): data = each rank builds on its "
        "shard of the samples; features = every rank sees all samples and computes its share "
        "of each section's output features (for Jacobian rows that do not fit; not with "
        "n_probes); no effect in one process")


class AblationConfig(Strict):
    split: Literal["train", "test"] = Field("test", description="data the ablations are scored on")
    max_samples: int | None = Field(2000, ge=1, description="score the ablations on a fixed "
                                    "random subset of this many samples (2000: the quick default "
                                    "run, about a minute); null = the whole split (every paper "
                                    "preset)")
    deltas: list[float] = Field([0.001, 0.01, 0.05], description="k_required tolerances")
    edge_delta: float = Field(0.001, gt=0, description="tolerance of the edge-ablation bisection")
    edges: bool = Field(True, description="run the edge-ablation bisection (the slow part)")
    edge_curve: bool = Field(True, description="also score every halving of the edges kept (N/2, "
                             "N/4, ..., 1), for the tolerance-free edge-ablation area of figure 10;"
                             " the bisection already scores those above its answer")
    batch_size: int = Field(1024, ge=1, description="samples per batch while ablating")
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="ablation precision (docs/method.md §9 allows float32; bases "
        "stay float64)")
    modularity_resolutions: list[float] = Field(
        [1.0, 0.5], min_length=1, description="Leiden resolutions whose partitions are stored in "
        "modularity.json (paper: 1 for Q, 0.5 for the main-text graph)")


class AnalysisConfig(Strict):
    """Optional analyses of the run's model beside the basis (interbasis.analysis.llc)."""

    llc: bool = Field(False, description="estimate the local learning coefficient (SGLD, "
                      "devinterp) on the family's training loss and data: degeneracy/llc")
    llc_over_training: bool = Field(True, description="with llc: also at every kept training "
                                    "snapshot (train.snapshot_every), as columns of "
                                    "degeneracy_over_training.csv")
    llc_snapshot_every: int = Field(0, ge=0, description="with llc_over_training: only the "
                                    "snapshots at multiples of this step (0: every one)")
    graph: bool = Field(True, description="false: skip the basis, ablations and graph metrics "
                        "(an LLC-only run, e.g. the calibration sweep)")
    llc_lr: float = Field(1e-4, gt=0, description="SGLD step size epsilon")
    llc_localization: float = Field(100.0, ge=0, description="SGLD localisation gamma: pull "
                                    "towards the trained weights")
    llc_nbeta: float | None = Field(None, gt=0, description="inverse temperature n*beta; null: "
                                    "n / log n for n training samples (WBIC's beta)")
    llc_chains: int = Field(4, ge=1, description="SGLD chains (llc_std is their spread)")
    llc_draws: int = Field(200, ge=2, description="draws per chain after burn-in (one per step)")
    llc_burnin: int = Field(100, ge=0, description="SGLD steps per chain before the draws")
    llc_batch_size: int = Field(64, ge=1, description="training samples per SGLD step")
    llc_seed: int = Field(0, ge=0, description="sampler seed (chain c uses seed + c)")
    llc_samples: int | None = Field(None, ge=1, description="training rows the LLC samples "
                                    "over; null: the family's own (its training set; tiny GPT: "
                                    "1,024 train windows)")


class LoggerConfig(Strict):
    kind: Literal["wandb", "offline", "none"] = Field(description="W&B online (if a key is set, "
                                                      "else offline), offline, or off")
    project: str = Field("interbasis", description="W&B project")
    entity: str | None = Field(None, description="W&B entity (user or team)")


class PathsConfig(Strict):
    root: str = Field(description="project root")
    results: str = Field(description="the results store")
    runs: str = Field(description="one folder per run, grouped by experiment")
    checkpoints: str = Field(description="committed trained models (read only)")
    cache: str = Field(description="trained-model cache of debug and ad-hoc runs (git-ignored)")
    wandb: str = Field(description="W&B files (offline runs)")
    rib_repo: str | None = Field(None, description="the LIB authors' models and numbers: a clone "
                                 "of ApolloResearch/rib or a seed<N>/ folder (conf/paths)")


class RunConfig(Strict):
    """The sections every run has; one subclass per family (declared in the family's module)
    narrows ``model`` and adds its ``data`` and ``train`` sections."""

    # what the family's ablations score: accuracy (a drop of at most 1) or CE loss (nats)
    score: ClassVar[Literal["accuracy", "cross_entropy"]] = "accuracy"

    experiment_name: str = Field("default", min_length=1, description="results/runs/<this>/")
    seed: int = Field(0, ge=0, description="model seed (initialisation and training)")
    threads: int = Field(2, ge=1, description="torch threads (1 when jobs run in parallel)")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="where the basis, "
                        "edges and ablations are computed: cpu, cuda or cuda:N")
    progress: bool | None = Field(None, description="progress bars: null = only on a terminal")
    rerun: bool = Field(False, description="run again even when the run directory already holds "
                        "a complete result (by default a complete run is skipped)")
    fail_fast: bool = Field(False, description="in a multirun, stop the sweep at the first failed "
                            "run and print its traceback (default: record it and go on)")
    estimate: bool = Field(False, description="print python -m interbasis.estimate's prediction "
                           "(timed on 1/64 and 1/32 of the basis data) before the basis build")
    model: ModelConfig
    method: MethodConfig
    ablation: AblationConfig
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    logger: LoggerConfig
    paths: PathsConfig


class ConfigError(ValueError):
    """A composed config that does not fit the schema; the message has one line per problem."""


def schemas() -> dict[str, type[RunConfig]]:
    """The run-config class of every registered family, by name (the registry is imported here,
    not at the top: the family modules import this module)."""
    from interbasis.families import FAMILIES

    return {name: family.schema for name, family in FAMILIES.items()}


def section_schema(family: str, section: str) -> type[Strict]:
    """The schema class of one section (``model``, ``data``, ``method``, ...) of a family."""
    annotation = schemas()[family].model_fields[section].annotation
    assert isinstance(annotation, type) and issubclass(annotation, Strict), (family, section)
    return annotation


def field_defaults(schema: type[BaseModel]) -> dict[str, Any]:
    """Every field of ``schema`` that has a default, as plain YAML values (sections recursed)."""
    out: dict[str, Any] = {}
    for name, field in schema.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out[name] = field_defaults(annotation)
        elif not field.is_required():
            out[name] = _plain(field.get_default(call_default_factory=True))
    return out


def schema_defaults(family: str) -> dict[str, Any]:
    """The whole default config of a family: what Hydra composes before any YAML file."""
    return field_defaults(schemas()[family])


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def register_defaults() -> None:
    """Store every registered family's :func:`schema_defaults` in Hydra's ConfigStore as
    ``schema/<family>`` and its ``debug=tiny`` shrink (``Family.tiny``) as ``shrink/tiny_<family>``
    (both package ``_global_``); conf/config.yaml composes ``schema: ${family}`` first and
    ``optional shrink: ${debug}_${family}`` last. Idempotent; call it again after registering a
    family at run time (``interbasis.families.refresh``)."""
    from hydra.core.config_store import ConfigStore

    from interbasis.families import FAMILIES

    store = ConfigStore.instance()
    for name, family in FAMILIES.items():
        store.store(group="schema", name=name, node=schema_defaults(name), package="_global_",
                    provider="interbasis")
        store.store(group="shrink", name=f"tiny_{name}", node=_plain(family.tiny),
                    package="_global_", provider="interbasis")


def validate(container: dict) -> RunConfig:
    """Check a resolved config dict against the schema of its ``model.family``."""
    model = container.get("model")
    family = model.get("family") if isinstance(model, dict) else None
    known = schemas()
    if not isinstance(family, str) or family not in known:
        allowed = " or ".join(repr(name) for name in known)
        raise ConfigError(f"config error: model.family = {family!r}: Input should be {allowed}")
    mismatch = _family_mismatch(family, container)
    if mismatch:
        raise ConfigError(mismatch)
    try:
        cfg = known[family].model_validate(container)
    except ValidationError as error:
        raise ConfigError("\n".join(_describe(problem, container)
                                    for problem in error.errors())) from None
    problems = cross_field_problems(cfg)
    if problems:
        raise ConfigError("\n".join(f"config error: {problem}" for problem in problems))
    return cfg


def _family_mismatch(family: str, container: dict) -> str | None:
    """One line when the model is of one family and the data of another (``model=tiny_gpt``
    alone keeps modadd's data and training): ``family=<name>`` picks all three together."""
    data = container.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    owners = [other for other in schemas() if name in _data_names(other)]
    if not owners or family in owners:
        return None  # the family's own data, or no family's: the schema names what is allowed
    return (f"config error: model.family = {family!r} but data.name = {name!r} (another "
            f"family's data); choose family={family} (it picks model, data and train together)")


def _data_names(family: str) -> tuple[str, ...]:
    fields = schemas()[family].model_fields
    if "data" not in fields:
        return ()
    return getattr(section_schema(family, "data").model_fields["name"].annotation, "__args__",
                   ())


def cross_field_problems(cfg: RunConfig) -> list[str]:
    """Values that each fit the schema but cannot work together (one line each)."""
    problems = []
    ablation = cfg.ablation
    tolerances = [("ablation.deltas", delta) for delta in ablation.deltas]
    tolerances.append(("ablation.edge_delta", ablation.edge_delta))
    for name, delta in tolerances:
        if delta <= 0:
            problems.append(f"{name} = {delta!r}: a tolerance must be > 0")
        elif cfg.score == "accuracy" and delta >= 1:
            problems.append(f"{name} = {delta!r}: {cfg.model.family} scores accuracy, which "
                            "cannot drop by 1 or more; give a tolerance below 1")
    layers = cfg.model.node_layers
    if len(set(layers)) != len(layers):
        problems.append(f"model.node_layers = {layers!r}: a layer is named twice")
    if "output" in layers[:-1]:
        problems.append(f"model.node_layers = {layers!r}: 'output' can only be the last layer")
    problems += cfg.model.problems()
    method = cfg.method
    if method.integration == "gradient" and method.n_intervals:
        problems.append(f"method.n_intervals = {method.n_intervals}: only integrated gradients "
                        "use intervals; set method.integration=trapezoidal or gauss-legendre")
    if method.rank_split == "features" and method.n_probes:
        problems.append(f"method.rank_split = 'features' with method.n_probes = "
                        f"{method.n_probes}: a probe mixes every output feature, so the features "
                        "cannot be split across ranks; set method.n_probes=null or "
                        "method.rank_split=data")
    if not cfg.analysis.graph and not cfg.analysis.llc:
        problems.append("analysis.graph = False and analysis.llc = False: the run would compute "
                        "nothing; turn one of them on")
    return problems


def _describe(problem: ErrorDetails, container: dict) -> str:
    field = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"config error: unknown key {field!r}"
    if problem["type"] == "missing":
        return f"config error: {field} is missing"
    if problem["type"] == "finite_number":
        return f"config error: {field} = {problem.get('input')!r}: must be a finite number"
    allowed = problem.get("ctx", {}).get("expected")
    message = problem["msg"] + (f" (allowed: {allowed})" if allowed and "expected" not in
                                problem["msg"] else "")
    return f"config error: {field} = {problem.get('input')!r}: {message}"
