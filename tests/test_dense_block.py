"""Closed-form Jacobian rows of transformer blocks (basis/dense_block.py, dense_ops.py) against
autograd at 1e-10 in float64: each part, the tiny GPT's blocks and half-blocks, and random
transformers GPT-2 / GPT-NeoX / Llama layers built from a config (no download)."""

import pytest
import torch

from interbasis import build_graph
from interbasis.basis.dense_block import BlockJacobian
from interbasis.basis.dense_ops import MLP, Attention, Norm
from interbasis.basis.fold import frozen_folded_copy
from interbasis.basis.sections import capture, section
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig

TOL = 1e-10


def autograd_rows(fn, x, cotangents):
    """Rows (m, P_in, K, d_in) of the vjps of fn at x for cotangents (K, m, P_out, d_out)."""
    _, vjp = torch.func.vjp(fn, x)
    return torch.func.vmap(vjp)(cotangents)[0].permute(1, 2, 0, 3)


def assert_close(a, b):
    scale = b.abs().max()
    assert (a - b).abs().max() <= TOL * scale, float((a - b).abs().max() / scale)


def pullback_matches(part_forward, pullback, x, d_out, K=5):
    generator = torch.Generator().manual_seed(1)
    g = torch.randn(K, *x.shape[:-1], d_out, generator=generator, dtype=x.dtype)
    expected = autograd_rows(part_forward, x, g)
    assert_close(pullback(g.permute(1, 2, 0, 3).contiguous()), expected)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_norm_pullback_equals_autograd(kind):
    x = rand(2, 5, 8) * 3 + 1
    norm = Norm(kind, rand(8, seed=1), rand(8, seed=2) if kind == "layer" else None, 1e-5)
    _, cache = norm.forward(x)
    pullback_matches(lambda v: norm.forward(v)[0], lambda g: norm.pullback(g, cache), x, 8)


@pytest.mark.parametrize("activation,gated", [("gelu", False), ("gelu_tanh", False),
                                              ("silu", True), ("relu", False)])
def test_mlp_pullback_equals_autograd(activation, gated):
    z = rand(2, 5, 6)
    mlp = MLP(activation, rand(6, 16, seed=1), None if gated else rand(16, seed=2),
              rand(16, 6, seed=3), rand(6, seed=4), rand(6, 16, seed=5) if gated else None)
    _, cache = mlp.forward(z)

    def pullback(g):
        return mlp.pullback_hidden(g @ mlp.W_out.T, cache)[0]

    pullback_matches(lambda v: mlp.forward(v)[0], pullback, z, 6)


@pytest.mark.parametrize("kv_heads,rotary", [(4, False), (2, True)])
def test_attention_pullback_equals_autograd(kv_heads, rotary):
    d, H, e, P = 8, 4, 3, 6
    z = rand(2, P, d)
    rot = None
    if rotary:  # partial rotary on the first 2 of 3 head coordinates
        angles = torch.arange(P, dtype=torch.float64)[:, None] * torch.tensor([0.3, 0.7])
        angles = torch.cat([angles[:, :1], angles[:, :1]], dim=-1)
        rot = lambda P: (angles[:P].cos(), angles[:P].sin())  # noqa: E731
    attn = Attention(rand(d, H * e, seed=1), rand(d, kv_heads * e, seed=2),
                     rand(d, kv_heads * e, seed=3), rand(H * e, d, seed=4), rand(H * e, seed=5),
                     rand(kv_heads * e, seed=6), rand(kv_heads * e, seed=7), rand(d, seed=8),
                     H, kv_heads, 0.4, rot)
    _, cache = attn.forward(z)
    pullback_matches(lambda v: attn.forward(v)[0], lambda g: attn.pullback(g, cache)[0], z, d)


def check_section(model, tokens, name_in, name_out, n_signs=2):
    """The model's closed form equals autograd through the real model, for +-1 probes over the
    output positions and a random output basis, with and without an input rotation."""
    jacobian = model.section_jacobian(name_in, name_out)
    assert isinstance(jacobian, BlockJacobian)
    acts = capture(model, tokens, [name_in, name_out])
    x = acts[name_in]
    m, P, d = x.shape
    fn = section(model, tokens, name_in, name_out)
    assert_close(jacobian.forward(x)[0], fn(x))
    C_out, C_in = rand(acts[name_out].shape[-1], 7, seed=3), rand(d, 5, seed=4)
    signs = 2 * torch.randint(0, 2, (n_signs, m, P), generator=torch.Generator().manual_seed(5))
    signs = signs.to(torch.float64) - 1
    cot = (signs[..., None, None] * C_out.T).permute(0, 3, 1, 2, 4).reshape(n_signs * 7, m, P,
                                                                           -1)
    expected = autograd_rows(fn, x, cot)
    assert_close(jacobian.rows(x, C_out, signs), expected)
    assert_close(jacobian.rows(x, C_out, signs, C_in), expected @ C_in)
    probes = rand(3, m, P, 7, seed=6)  # the sketch's rows: any cotangent in the rotated space
    expected = autograd_rows(fn, x, probes @ C_out.T)
    assert_close(jacobian.rows(x, C_out, None, probes=probes), expected)


@pytest.fixture(scope="module")
def tiny_gpt():
    model = TinyGPT(TinyGPTConfig(d_vocab=20, n_ctx=8, d_model=12, n_layers=2, n_heads=3,
                                  d_mlp=24), seed=0)
    with torch.no_grad():  # nonzero biases and norm shifts, so the constant's column matters
        for name, param in model.named_parameters():
            if name.endswith(("bias", "b_QKV", "b_O", "b_in", "b_out")) or "weight" in name:
                param.add_(0.3 * rand(*param.shape, seed=len(name)))
    return frozen_folded_copy(model, torch.float64)


@pytest.mark.parametrize("name_in,name_out", [
    ("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"),
    ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid"),
    ("blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"),
    ("blocks.1.hook_resid_pre", "ln_final")])
def test_tiny_gpt_sections_equal_autograd(tiny_gpt, name_in, name_out):
    tokens = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(0))
    check_section(tiny_gpt, tokens, name_in, name_out)


def hf_model(arch):
    transformers = pytest.importorskip("transformers")
    from interbasis.models.hf_lm import ResidualLM

    common = dict(vocab_size=40, attn_implementation="eager")
    if arch == "gpt2":
        config = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=4, n_positions=8,
                                         **common)
    elif arch == "gpt_neox":
        config = transformers.GPTNeoXConfig(num_hidden_layers=2, hidden_size=16,
                                            num_attention_heads=4, intermediate_size=32,
                                            max_position_embeddings=8, rotary_pct=0.5,
                                            **common)
    else:
        config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=16,
                                          num_attention_heads=4, num_key_value_heads=2,
                                          intermediate_size=32, max_position_embeddings=8,
                                          **common)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return frozen_folded_copy(ResidualLM(model), torch.float64)


def float64_rms_norm(self, hidden):
    """LlamaRMSNorm in the input's dtype: transformers' own rounds to float32 (whose autograd
    then differs from any float64 Jacobian at ~1e-7)."""
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))


def float64_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **_):
    """transformers' eager attention with the softmax in the input's dtype (GPT-NeoX's and
    Llama's take it in float32)."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    weights = (query @ key.transpose(2, 3) * scaling + attention_mask).softmax(-1)
    return (weights @ value).transpose(1, 2).contiguous(), weights


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama"])
@pytest.mark.parametrize("block", [0, 1])
def test_transformers_blocks_equal_autograd(arch, block, monkeypatch):
    """At 1e-10 once the model's own float32 roundings (softmax, RMSNorm) are float64 too."""
    if arch == "llama":
        from transformers.models.llama import modeling_llama
        monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", float64_rms_norm)
        monkeypatch.setattr(modeling_llama, "eager_attention_forward", float64_attention)
    if arch == "gpt_neox":
        from transformers.models.gpt_neox import modeling_gpt_neox
        monkeypatch.setattr(modeling_gpt_neox, "eager_attention_forward", float64_attention)
    model = hf_model(arch)
    tokens = torch.randint(0, 40, (3, 8), generator=torch.Generator().manual_seed(0))
    name_out = "blocks.1.hook_resid_pre" if block == 0 else "hook_resid_final"
    check_section(model, tokens, f"blocks.{block}.hook_resid_pre", name_out)


def test_unrecognised_sections_fall_back_to_the_generic_path(tiny_gpt):
    assert tiny_gpt.section_jacobian("blocks.0.hook_resid_pre", "ln_final") is None
    assert tiny_gpt.section_jacobian("blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid") is None
    model = hf_model("gpt2")
    assert model.section_jacobian("blocks.0.hook_resid_pre", "hook_resid_final") is None


@pytest.mark.parametrize("n_sources,n_probes", [(1, None), (None, None), (None, 8)])
def test_block_fast_path_builds_the_generic_graph(tiny_gpt, n_sources, n_probes):
    """Exact sources, one stochastic source and the sketch (the same draws on both paths)."""
    tokens = torch.randint(0, 20, (6, 8), generator=torch.Generator().manual_seed(1))
    layers = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "ln_final"]
    graphs = [build_graph(tiny_gpt, tokens, layers, n_sources=n_sources, batch_size=4,
                          fast_paths=fast, integration="trapezoidal", n_intervals=1,
                          n_probes=n_probes)
              for fast in (True, False)]
    for fast_layer, slow_layer in zip(graphs[0].layers, graphs[1].layers):
        assert_close(fast_layer.eigenvalues, slow_layer.eigenvalues)
    for fast_edges, slow_edges in zip(graphs[0].edges, graphs[1].edges):
        assert_close(fast_edges, slow_edges)


def test_chunks_of_samples_probes_and_features_leave_the_graph_unchanged(tiny_gpt):
    tokens = torch.randint(0, 20, (6, 8), generator=torch.Generator().manual_seed(2))
    layers = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "ln_final"]
    whole, tiny = (build_graph(tiny_gpt, tokens, layers, max_memory=budget)
                   for budget in (None, 20_000))  # 2,500 numbers: a few features at a time
    for a, b in zip(whole.layers, tiny.layers):
        assert_close(b.eigenvalues, a.eigenvalues)
    for a, b in zip(whole.edges, tiny.edges):
        assert_close(b, a)


def test_one_position_with_sources_is_exact_as_on_the_generic_path(tiny_gpt):
    tokens = torch.randint(0, 20, (5, 1), generator=torch.Generator().manual_seed(3))
    layers = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "ln_final"]
    fast, slow = (build_graph(tiny_gpt, tokens, layers, n_sources=2, fast_paths=f)
                  for f in (True, False))
    for a, b in zip(fast.layers, slow.layers):
        assert_close(a.eigenvalues, b.eigenvalues)
