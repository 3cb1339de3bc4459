"""Bias folding and the attention/MLP hook points of pretrained LMs (models/hf_lm.py), on tiny
randomly initialised models of each architecture saved to disk and loaded through the family,
with every bias random (transformers initialises them to 0, which would hide a folding bug)."""

from __future__ import annotations

import copy

import pytest
import torch

from interbasis import build_graph
from interbasis.basis.sections import capture, section
from interbasis.models.hf_lm import ResidualLM, load_causal_lm

transformers = pytest.importorskip("transformers", reason="the lm extra (transformers) is not "
                                   "installed: pip install -e '.[lm]'")

SMALL = dict(vocab_size=30, bos_token_id=0, eos_token_id=1)


def configs() -> dict:
    return {
        "gpt2": (transformers.GPT2LMHeadModel,
                 transformers.GPT2Config(n_positions=16, n_embd=8, n_layer=2, n_head=2, **SMALL)),
        "gpt_neo": (transformers.GPTNeoForCausalLM, transformers.GPTNeoConfig(
            hidden_size=8, num_layers=2, num_heads=2, attention_types=[[["global", "local"], 1]],
            max_position_embeddings=16, window_size=4, **SMALL)),
        # sequential residual (resid_mid exists) and Pythia's parallel one (it does not)
        "gpt_neox": (transformers.GPTNeoXForCausalLM, transformers.GPTNeoXConfig(
            hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=16, use_parallel_residual=False, **SMALL)),
        "gpt_neox_parallel": (transformers.GPTNeoXForCausalLM, transformers.GPTNeoXConfig(
            hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=16, use_parallel_residual=True, **SMALL)),
        "llama": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
            hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=16, **SMALL)),
    }


def node_layers(architecture: str) -> list[str]:
    if architecture == "gpt_neox_parallel":
        return ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "hook_resid_final",
                "output"]
    return ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre",
            "blocks.1.hook_resid_mid", "hook_resid_final", "output"]


def tokens(seed: int, shape=(3, 10)) -> torch.Tensor:
    return torch.randint(0, 30, shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=list(configs()))
def loaded(request, tmp_path_factory):
    """(architecture, the model loaded from disk in float64 with hook points)."""
    model_class, config = configs()[request.param]
    torch.manual_seed(0)
    model = model_class(config)
    with torch.no_grad():  # random biases and norm shifts: the fold must carry all of them
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(0.3 * torch.randn_like(parameter))
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, ResidualLM(load_causal_lm(str(folder)).double())


def test_folded_equals_unfolded_in_float64(loaded):
    architecture, model = loaded
    folded = model.fold_bias()
    assert folded.is_bias_folded and not model.is_bias_folded
    x = tokens(1)
    torch.testing.assert_close(folded(x), model(x), atol=1e-10, rtol=0)
    names = node_layers(architecture)
    plain, with_constant = capture(model, x, names), capture(folded, x, names)
    for name in names[:-1]:
        assert with_constant[name].shape == (3, 10, 9)
        assert torch.all(with_constant[name][..., -1] == 1)
        torch.testing.assert_close(with_constant[name][..., :-1], plain[name], atol=1e-10,
                                   rtol=0)
    torch.testing.assert_close(with_constant["output"], plain["output"], atol=1e-10, rtol=0)


def test_the_constant_carries_every_bias_of_a_section(loaded):
    """With the constant set to 0, each section is the model's section without its biases; with
    it 1, the model's own (so the biases are exactly the weights of the constant)."""
    architecture, model = loaded
    folded = model.fold_bias()
    unbiased = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in unbiased.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    x = tokens(2)
    names = node_layers(architecture)[:-1]
    acts = capture(folded, x, names)
    for name_in, name_out in zip(names, names[1:], strict=False):
        stream = acts[name_in].clone()
        stream[..., -1] = 0
        without = section(folded, x, name_in, name_out)(stream)
        reference = section(unbiased, x, name_in, name_out)(stream[..., :-1])
        torch.testing.assert_close(without[..., :-1], reference, atol=1e-10, rtol=0)
        assert torch.all(without[..., -1] == 0)  # the constant passes through unchanged
        has_bias = architecture != "llama"
        if has_bias:  # the biases matter, so the test above can fail
            assert not torch.allclose(section(folded, x, name_in, name_out)(acts[name_in]),
                                      without, atol=1e-6)


def test_resid_mid_is_the_stream_between_attention_and_mlp(loaded):
    architecture, model = loaded
    if architecture == "gpt_neox_parallel":
        assert not hasattr(model.blocks[0], "hook_resid_mid")  # the MLP reads resid_pre
        return
    attention_name = {"gpt2": "attn", "gpt_neo": "attn", "gpt_neox": "attention",
                      "llama": "self_attn"}[model.model_type]
    layer = model.model.get_submodule({"llama": "model.layers",
                                       "gpt_neox": "gpt_neox.layers"}.get(model.model_type,
                                                                          "transformer.h"))[0]
    seen = {}

    def keep(module, args, output):
        seen["attention"] = output[0]

    handle = layer.get_submodule(attention_name).register_forward_hook(keep, prepend=True)
    try:
        acts = capture(model, tokens(3), ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid"])
    finally:
        handle.remove()
    torch.testing.assert_close(acts["blocks.0.hook_resid_mid"],
                               acts["blocks.0.hook_resid_pre"] + seen["attention"], atol=1e-12,
                               rtol=0)
    # a replaced resid_mid is what the MLP and the residual sum see
    folded = model.fold_bias()
    x = tokens(4)
    names = ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre"]
    mid = capture(folded, x, names)
    shifted = mid[names[0]] + torch.cat([torch.ones(3, 10, 8, dtype=torch.float64),
                                         torch.zeros(3, 10, 1, dtype=torch.float64)], -1)
    after = section(folded, x, *names)(shifted)
    assert not torch.allclose(after, mid[names[1]], atol=1e-3)
    torch.testing.assert_close(section(folded, x, *names)(mid[names[0]]), mid[names[1]],
                               atol=1e-12, rtol=0)


def test_the_constant_feature_has_edges_and_the_logits_are_a_node_layer(loaded):
    architecture, model = loaded
    names = node_layers(architecture)
    graph = build_graph(model, tokens(5, (6, 8)), names, method="lib", n_sources=1)
    assert graph.layers[-1].C.shape[0] == 30  # the logits, a 30-token vocabulary
    for index, edges in enumerate(graph.edges):
        assert torch.isfinite(edges).all()
        if architecture != "llama":  # biases: the constant feature (column 0) interacts
            rows = slice(1, None) if graph.layers[index + 1].has_constant else slice(None)
            assert edges[rows, 0].sum() > 0, graph.transition_names[index]


def test_a_large_vocabulary_is_not_a_node_layer():
    from interbasis.models.hf_lm import check_output_vocab

    check_output_vocab(["blocks.0.hook_resid_pre", "output"], 30)  # tiny models: fine
    check_output_vocab(["blocks.0.hook_resid_pre", "hook_resid_final"], 50_257)
    with pytest.raises(ValueError, match="end the node layers at hook_resid_final") as error:
        check_output_vocab(["blocks.0.hook_resid_pre", "output"], 50_257)
    assert "\n" not in str(error.value) and "20 GB" in str(error.value)
