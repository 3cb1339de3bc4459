"""Pretrained LMs through transformers, on tiny randomly initialised models saved to disk (the real
loading path: ``from_pretrained(folder)``), one per supported architecture; offline misses."""

from __future__ import annotations

import pytest
import torch

from interbasis import build_graph
from interbasis.basis.sections import capture
from interbasis.models.hf_lm import ModelNotAvailable, ResidualLM, load_causal_lm
from interbasis.results import load_runs

transformers = pytest.importorskip("transformers", reason="the lm extra (transformers) is not "
                                   "installed: pip install -e '.[lm]'")

NODE_LAYERS = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "hook_resid_final"]


def tiny_configs() -> dict:
    small = dict(vocab_size=30, bos_token_id=0, eos_token_id=1)
    return {
        "gpt2": (transformers.GPT2LMHeadModel,
                 transformers.GPT2Config(n_positions=16, n_embd=8, n_layer=2, n_head=2, **small)),
        "gpt_neox": (transformers.GPTNeoXForCausalLM, transformers.GPTNeoXConfig(
            hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=16, **small)),
        "gpt_neo": (transformers.GPTNeoForCausalLM, transformers.GPTNeoConfig(
            hidden_size=8, num_layers=2, num_heads=2, attention_types=[[["global", "local"], 1]],
            max_position_embeddings=16, window_size=4, **small)),
        "llama": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
            hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=16, **small)),
    }


@pytest.fixture(scope="module", params=["gpt2", "gpt_neox", "gpt_neo", "llama"])
def saved_model(request, tmp_path_factory):
    model_class, config = tiny_configs()[request.param]
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(request.param)
    model_class(config).save_pretrained(folder)
    return request.param, folder


def test_loaded_model_folds_exactly_and_hook_points_carry_the_constant(saved_model):
    architecture, folder = saved_model
    model = ResidualLM(load_causal_lm(str(folder)).double())
    assert model.model_type == architecture and not model.is_bias_folded
    folded = model.fold_bias()
    tokens = torch.randint(0, 30, (3, 10), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(folded(tokens), model(tokens), atol=1e-10, rtol=0)
    plain, with_constant = capture(model, tokens, NODE_LAYERS), capture(folded, tokens,
                                                                        NODE_LAYERS)
    for name in NODE_LAYERS:
        assert with_constant[name].shape == (3, 10, 9)
        assert torch.all(with_constant[name][..., -1] == 1)
        torch.testing.assert_close(with_constant[name][..., :-1], plain[name], atol=1e-12,
                                   rtol=0)
    # the unfolded model's hooks still see d-wide streams after folding a copy
    assert capture(model, tokens, NODE_LAYERS)[NODE_LAYERS[0]].shape == (3, 10, 8)


def test_replacing_a_hook_point_input_changes_the_logits(saved_model):
    _, folder = saved_model
    folded = ResidualLM(load_causal_lm(str(folder)).double()).fold_bias()
    tokens = torch.randint(0, 30, (2, 6), generator=torch.Generator().manual_seed(2))
    point = folded.blocks[1].hook_resid_pre

    def scale(module, args):
        return (torch.cat([2 * args[0][..., :-1], args[0][..., -1:]], -1),)

    base = folded(tokens)
    handle = point.register_forward_pre_hook(scale)
    try:
        assert not torch.allclose(folded(tokens), base)
    finally:
        handle.remove()
    torch.testing.assert_close(folded(tokens), base, atol=0, rtol=0)


def test_lib_graph_with_stochastic_sources_on_a_loaded_model(saved_model):
    _, folder = saved_model
    model = ResidualLM(load_causal_lm(str(folder)).double())
    tokens = torch.randint(0, 30, (6, 8), generator=torch.Generator().manual_seed(3))
    graph = build_graph(model, tokens, NODE_LAYERS, method="lib", n_sources=1)
    assert [layer.n_positions for layer in graph.layers] == [8, 8, 8]
    for index, edges in enumerate(graph.edges):
        assert edges.shape == (graph.layers[index + 1].C.shape[1], graph.layers[index].C.shape[1])
        assert torch.isfinite(edges).all() and edges[:, 1:].sum() > 0


def test_missing_model_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match="download it once online") as error:
        load_causal_lm(str(tmp_path / "no-such-model"))
    assert "\n" not in str(error.value)


@pytest.mark.integration
def test_hf_lm_family_runs_end_to_end_on_a_saved_model_and_tokenizer(tmp_path):
    """experiment=smollm2_135m with model.name pointing at a tiny saved Llama and its tokenizer:
    the same loading, tokenizing and CE-loss ablation path as the real SmolLM2 run."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    from hydra_runs import run_in_process

    text = "In the beginning was the word, and the word was with the text. " * 60
    vocabulary = {char: index for index, char in enumerate(["[UNK]", *sorted(set(text))])}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")  # one char a token
    folder = tmp_path / "tiny-llama"
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer,
                                         unk_token="[UNK]").save_pretrained(folder)
    model_class, config = tiny_configs()["llama"]
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    corpus = tmp_path / "text.txt"
    corpus.write_text(text)
    out = run_in_process("experiment=smollm2_135m", f"model.name={folder}", f"data.path={corpus}",
                  "data.dump_kjv=false", "data.context=8", "data.basis_samples=6",
                  "data.ablation_samples=3", "ablation.edges=true", "logger=none",
                  "model.node_layers=[blocks.0.hook_resid_pre,blocks.1.hook_resid_pre,"
                  "hook_resid_final]", results=tmp_path / "results")
    assert out.returncode == 0, out.stderr[-2000:]
    runs = load_runs(tmp_path / "results" / "runs")
    row = runs.iloc[0]
    assert row["model"] == "hf_lm" and row["ablation/n_samples"] == 3
    assert row["model/d_model"] == 8 and row["data/context"] == 8
    assert row["ablation/edges_required@0.05/total"] >= 0
    assert "ablation/k_required@0.05/blocks.1.hook_resid_pre" in runs.columns
