"""Load a TransformerLens ``HookedTransformer`` state dict into :class:`ModAddTransformer`.

The LIB paper's authors (ApolloResearch/rib) trained their modular-addition models with
TransformerLens and published them as plain state dicts (``model_epoch_60000.pt``). Our model
already uses TransformerLens names and layouts (``W_Q`` is (n_heads, d_model, d_head), row-vector
activations), so the mapping is one rename, ``pos_embed.W_pos`` -> ``embed.W_pos``, plus two
buffers that we do not store: the causal ``mask`` (the last position sees every key, so our
last-position attention needs none) and ``IGNORE`` (the masked score). Every other key must be
present with exactly the shape our config implies; anything else (LayerNorm weights, a second
block, another width) is a different architecture and is refused in one line.

    >>> model = load_transformer_lens("seed0/model_epoch_60000.pt", ModAddTransformerConfig())

:func:`find_checkpoint` picks a seed's file from a folder: a clone of ApolloResearch/rib (its
``rib_scripts/train_modular_arithmetic/sample_checkpoints/<run>/``), that ``sample_checkpoints``
folder itself, or a flat ``seed<N>/model_epoch_60000.pt`` layout. Runs are matched by the
``seed`` in each run's ``config.yaml`` (upstream, seed 0's folder has no seed prefix).
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import Tensor

from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig

CHECKPOINT_NAME = "model_epoch_60000.pt"
RIB_CHECKPOINTS = Path("rib_scripts/train_modular_arithmetic/sample_checkpoints")
RENAMED = {"pos_embed.W_pos": "embed.W_pos"}
UNUSED_BUFFERS = ("blocks.0.attn.mask", "blocks.0.attn.IGNORE")


class TransformerLensCheckpointError(ValueError):
    """A checkpoint that is not a state dict of this architecture, or cannot be found."""


def state_dict_from_transformer_lens(tl_state: dict[str, Tensor], cfg: ModAddTransformerConfig,
                                     source: str = "checkpoint") -> dict[str, Tensor]:
    """Our state dict from a TransformerLens one, refusing any key or shape that does not fit."""
    model = ModAddTransformer(cfg, seed=0)
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    renamed = {RENAMED.get(name, name): value for name, value in tl_state.items()
               if name not in UNUSED_BUFFERS}
    missing = [name for name in expected if name not in renamed]
    extra = [name for name in renamed if name not in expected]
    arch = (f"d_model={cfg.d_model}, n_heads={cfg.n_heads}, d_head={cfg.d_head}, "
            f"d_mlp={cfg.d_mlp}, d_vocab={cfg.d_vocab}, n_ctx={cfg.n_ctx}, 1 block, no LayerNorm")
    if extra or missing:
        raise TransformerLensCheckpointError(
            f"{source}: not this architecture ({arch}): "
            + "; ".join(part for part in (
                f"unexpected keys {extra[:4]}{' ...' if len(extra) > 4 else ''}" if extra else "",
                f"missing keys {missing[:4]}{' ...' if len(missing) > 4 else ''}"
                if missing else "") if part))
    for name, shape in expected.items():
        got = tuple(renamed[name].shape)
        if got != shape:
            raise TransformerLensCheckpointError(
                f"{source}: {name} has shape {got}, this architecture ({arch}) needs {shape}")
    return {name: renamed[name] for name in expected}


def load_transformer_lens(path: str | Path, cfg: ModAddTransformerConfig) -> ModAddTransformer:
    """The modular-addition model held by a TransformerLens state-dict file (float32 as saved)."""
    path = Path(path)
    if not path.is_file():
        raise TransformerLensCheckpointError(f"checkpoint {path} does not exist")
    try:
        tl_state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle error, a truncated file, ...: one line, with the cause
        raise TransformerLensCheckpointError(
            f"checkpoint {path}: not a readable torch file ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(tl_state, dict) or not all(isinstance(v, Tensor) for v in tl_state.values()):
        raise TransformerLensCheckpointError(
            f"checkpoint {path}: expected a plain state dict (name -> tensor) of a "
            f"HookedTransformer, got {type(tl_state).__name__}")
    model = ModAddTransformer(cfg, seed=0)
    model.load_state_dict(state_dict_from_transformer_lens(tl_state, cfg, str(path)))
    return model


def find_checkpoint(location: str | Path, seed: int) -> Path:
    """The checkpoint of model seed ``seed`` at ``location`` (a file, or a folder; see above)."""
    location = Path(location)
    if location.is_file():
        return location
    if not location.is_dir():
        raise TransformerLensCheckpointError(
            f"checkpoint location {location} does not exist (point paths.rib_repo at a clone of "
            "ApolloResearch/rib or at a folder of seed<N>/model_epoch_60000.pt)")
    flat = location / f"seed{seed}" / CHECKPOINT_NAME
    if flat.is_file():
        return flat
    runs = location / RIB_CHECKPOINTS if (location / RIB_CHECKPOINTS).is_dir() else location
    matches = sorted(config.parent / CHECKPOINT_NAME for config in runs.glob("*/config.yaml")
                     if _config_seed(config) == seed
                     and (config.parent / CHECKPOINT_NAME).is_file())
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(str(m) for m in matches)
        raise TransformerLensCheckpointError(
            f"{location}: expected one {CHECKPOINT_NAME} for seed {seed} (as seed{seed}/ or a "
            f"run folder whose config.yaml has seed: {seed}), found {found}")
    return matches[0]


def _config_seed(config: Path) -> int | None:
    try:
        seed = yaml.safe_load(config.read_text()).get("seed")
    except (yaml.YAMLError, AttributeError, OSError):
        return None
    return seed if isinstance(seed, int) else None
