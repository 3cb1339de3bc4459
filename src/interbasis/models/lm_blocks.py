"""The closed-form Jacobians (basis/dense_block.py) of language-model block sections: the weights
of a transformers GPT-2, GPT-NeoX or Llama decoder layer, or of a tiny GPT block, read into the
library's neutral form.

``ResidualLM.section_jacobian`` and ``TinyGPT.section_jacobian`` call these; a section that is
not one block (or half of one, for the tiny GPT) returns None and the build falls back to the
generic ``vmap(vjp)`` path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from interbasis.basis.dense_block import BlockJacobian
from interbasis.basis.dense_ops import MLP, Attention, Norm
from interbasis.models.hf_lm import hf_config

if TYPE_CHECKING:
    from interbasis.models.tiny_gpt import TinyGPT

# transformers activation names -> basis/dense_ops.py's
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                  "silu": "silu", "swish": "silu", "relu": "relu"}
# transformers biases enter as c * b (models/hf_lm.py fold_bias), as in the tiny GPT
HF_CONSTANT = "biases"
_PRE = re.compile(r"blocks\.(\d+)\.hook_resid_pre$")


def block_index(name_in: str, name_out: str, n_layers: int, final: str) -> int | None:
    """i when the section is blocks.i.hook_resid_pre -> the next block's input (or ``final``)."""
    match = _PRE.match(name_in)
    if match is None:
        return None
    i = int(match.group(1))
    following = f"blocks.{i + 1}.hook_resid_pre" if i + 1 < n_layers else final
    return i if name_out == following else None


def _norm(module: nn.Module) -> Norm:
    if isinstance(module, nn.LayerNorm):
        return Norm("layer", module.weight, module.bias, module.eps)
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    if eps is None or getattr(module, "bias", None) is not None:
        raise ValueError(f"unrecognised norm {type(module).__name__}")
    return Norm("rms", module.get_parameter("weight"), None, eps)


def _activation(config) -> str | None:
    name = getattr(config, "activation_function", None) or getattr(config, "hidden_act", None)
    return HF_ACTIVATIONS.get(name) if isinstance(name, str) else None


def _linear(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(W^T, b) of a linear layer (b None when it has no bias)."""
    bias = getattr(module, "bias", None)
    return module.get_parameter("weight").T, bias if isinstance(bias, Tensor) else None


def _scaling(attention: nn.Module) -> float:
    """The score scale of a transformers attention module (its ``scaling`` attribute)."""
    scaling = getattr(attention, "scaling", None)
    if not isinstance(scaling, (int, float)):
        raise ValueError(f"{type(attention).__name__} has no numeric score scale (scaling)")
    return scaling


Rotary = Callable[[int], tuple[Tensor, Tensor]]


def _rotary(rotary_emb: nn.Module, like: Tensor) -> Rotary:
    """P -> (cos, sin) (P, rot) from the model's own rotary module (same rounding as it)."""
    def rotary(P: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(P, device=like.device)[None]
        cos, sin = rotary_emb(like.new_zeros(1, P, 1), positions)
        return cos[0], sin[0]
    return rotary


def hf_block_jacobian(model: nn.Module, model_type: str, index: int) -> BlockJacobian | None:
    """The decoder layer ``index`` of a transformers causal LM (through models/hf_lm.py's
    ResidualLM, whose folded copy makes every bias a weight of the constant coordinate), or None
    when unrecognised."""
    config = hf_config(model)
    activation = _activation(config)
    if activation is None or getattr(config, "add_cross_attention", False):
        return None
    H = config.num_attention_heads if hasattr(config, "num_attention_heads") else config.n_head
    like = next(model.parameters())
    if model_type == "gpt2":
        if config.scale_attn_by_inverse_layer_idx or config.reorder_and_upcast_attn:
            return None
        return _gpt2_block(model.get_submodule(f"transformer.h.{index}"), activation, H)
    if model_type == "gpt_neox":
        return _neox_block(model.get_submodule(f"gpt_neox.layers.{index}"), activation, H,
                           config.hidden_size // H,
                           _rotary(model.get_submodule("gpt_neox.rotary_emb"), like),
                           parallel=config.use_parallel_residual)
    if model_type == "llama":
        return _llama_block(model.get_submodule(f"model.layers.{index}"), activation, H,
                            config.num_key_value_heads,
                            _rotary(model.get_submodule("model.rotary_emb"), like))
    return None


def _gpt2_block(layer: nn.Module, activation: str, H: int) -> BlockJacobian:
    W, b = layer.get_parameter("attn.c_attn.weight"), layer.get_parameter("attn.c_attn.bias")
    (W_Q, W_K, W_V), (b_Q, b_K, b_V) = W.chunk(3, dim=1), b.chunk(3)  # Conv1D: (d, 3d)
    attn = Attention(W_Q, W_K, W_V, layer.get_parameter("attn.c_proj.weight"), b_Q, b_K, b_V,
                     layer.get_parameter("attn.c_proj.bias"), H, H,
                     _scaling(layer.get_submodule("attn")))
    mlp = MLP(activation, layer.get_parameter("mlp.c_fc.weight"),
              layer.get_parameter("mlp.c_fc.bias"), layer.get_parameter("mlp.c_proj.weight"),
              layer.get_parameter("mlp.c_proj.bias"))
    return BlockJacobian(_norm(layer.get_submodule("ln_1")), attn,
                         _norm(layer.get_submodule("ln_2")), mlp, constant=HF_CONSTANT)


def _neox_block(layer: nn.Module, activation: str, H: int, e: int, rotary: Rotary,
                parallel: bool) -> BlockJacobian:
    qkv = layer.get_submodule("attention.query_key_value")
    W = qkv.get_parameter("weight").view(H, 3, e, -1)  # per head [q, k, v]
    b = qkv.get_parameter("bias").view(H, 3, e)
    W_Q, W_K, W_V = (W[:, i].reshape(H * e, -1).T for i in range(3))
    b_Q, b_K, b_V = (b[:, i].reshape(H * e) for i in range(3))
    W_O, b_O = _linear(layer.get_submodule("attention.dense"))
    attn = Attention(W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, H, H,
                     _scaling(layer.get_submodule("attention")), rotary)
    mlp = MLP(activation, *_linear(layer.get_submodule("mlp.dense_h_to_4h")),
              *_linear(layer.get_submodule("mlp.dense_4h_to_h")))
    return BlockJacobian(_norm(layer.get_submodule("input_layernorm")), attn,
                         _norm(layer.get_submodule("post_attention_layernorm")), mlp,
                         parallel=parallel, constant=HF_CONSTANT)


def _llama_block(layer: nn.Module, activation: str, H: int, H_kv: int, rotary: Rotary
                 ) -> BlockJacobian | None:
    sa = layer.get_submodule("self_attn")
    (W_Q, b_Q), (W_K, b_K), (W_V, b_V), (W_O, b_O) = (
        _linear(sa.get_submodule(p)) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
    attn = Attention(W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, H, H_kv, _scaling(sa), rotary)
    W_up, b_up = _linear(layer.get_submodule("mlp.up_proj"))
    if b_up is not None:
        return None
    mlp = MLP(activation, W_up, None, *_linear(layer.get_submodule("mlp.down_proj")),
              W_gate=_linear(layer.get_submodule("mlp.gate_proj"))[0])
    return BlockJacobian(_norm(layer.get_submodule("input_layernorm")), attn,
                         _norm(layer.get_submodule("post_attention_layernorm")), mlp,
                         constant=HF_CONSTANT)


def tiny_gpt_jacobian(model: TinyGPT, name_in: str, name_out: str) -> BlockJacobian | None:
    """A tiny GPT (models/tiny_gpt.py) section: a block (resid_pre -> the next node layer after
    it), its attention (resid_pre -> resid_mid) or its MLP (resid_mid -> resid_post)."""
    n_layers = model.cfg.n_layers
    match = re.match(r"blocks\.(\d+)\.hook_resid_(pre|mid)$", name_in)
    if match is None:
        return None
    i, where = int(match.group(1)), match.group(2)
    after = f"blocks.{i + 1}.hook_resid_pre" if i + 1 < n_layers else "ln_final"
    block = model.block(i)
    ends = {"pre": {f"blocks.{i}.hook_resid_mid": (True, False),
                    f"blocks.{i}.hook_resid_post": (True, True), after: (True, True)},
            "mid": {f"blocks.{i}.hook_resid_post": (False, True), after: (False, True)}}
    if name_out not in ends[where]:
        return None
    with_attn, with_mlp = ends[where][name_out]
    H = block.attn.n_heads
    W_Q, W_K, W_V = block.attn.W_QKV.T.chunk(3, dim=1)
    b_Q, b_K, b_V = block.attn.b_QKV.chunk(3)
    scale = (block.attn.W_O.shape[0] // H) ** -0.5
    attn = Attention(W_Q, W_K, W_V, block.attn.W_O.T, b_Q, b_K, b_V, block.attn.b_O, H, H,
                     scale)
    mlp = MLP("gelu", block.mlp.W_in.T, block.mlp.b_in, block.mlp.W_out.T, block.mlp.b_out)

    def norm(ln):
        return Norm("layer", ln.weight, ln.bias, ln.eps)

    return BlockJacobian(norm(block.ln1) if with_attn else None, attn if with_attn else None,
                         norm(block.ln2) if with_mlp else None, mlp if with_mlp else None,
                         constant="biases")
