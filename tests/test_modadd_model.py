"""The modular-addition dataset and transformer: split, forward paths, hook points, bias folding."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from interbasis.data.modadd import all_pairs, make_modadd_split
from interbasis.models.modadd import HookPoint, ModAddTransformer, ModAddTransformerConfig
from modadd_tiny import TINY, P, tiny_model, tiny_tokens

HOOK_NAMES = [
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_resid_mid",
    "blocks.0.mlp.hook_pre",
    "blocks.0.mlp.hook_post",
    "blocks.0.hook_resid_post",
]


def capture_hook_inputs(model: torch.nn.Module, tokens: Tensor) -> dict[str, Tensor]:
    seen: dict[str, Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_pre_hook(
            lambda module, args, name=name: seen.__setitem__(name, args[0].detach().clone())
        )
        for name in HOOK_NAMES
    ]
    try:
        model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    return seen


# --- data -------------------------------------------------------------------------------------


def test_paper_split_sizes_and_labels() -> None:
    data = make_modadd_split()
    assert data.train_tokens.shape == (3830, 3) and data.test_tokens.shape == (8939, 3)
    assert data.train_tokens.dtype == torch.long and data.train_labels.shape == (3830,)
    for tokens, labels in (data.split("train"), data.split("test")):
        assert torch.equal(labels, (tokens[:, 0] + tokens[:, 1]) % 113)
        assert torch.all(tokens[:, 2] == 113)
    pair_ids = torch.cat([data.train_tokens, data.test_tokens])[:, :2] @ torch.tensor([113, 1])
    assert torch.equal(pair_ids.sort().values, torch.arange(113**2))  # disjoint and complete


def test_all_pairs_are_a_major() -> None:
    tokens, labels = all_pairs(5)
    assert tokens[:6].tolist() == [[0, 0, 5], [0, 1, 5], [0, 2, 5], [0, 3, 5], [0, 4, 5], [1, 0, 5]]
    assert labels[:6].tolist() == [0, 1, 2, 3, 4, 1]


def test_split_depends_on_data_seed_only() -> None:
    torch.manual_seed(1)
    first = make_modadd_split(p=P)
    ModAddTransformer(TINY, seed=5)  # a model seed must not move the split
    torch.manual_seed(2)
    second = make_modadd_split(p=P)
    assert torch.equal(first.train_tokens, second.train_tokens)
    other = make_modadd_split(p=P, data_seed=1)
    assert not torch.equal(first.train_tokens, other.train_tokens)


# --- model ------------------------------------------------------------------------------------


def test_init_is_seeded_and_grokking_scaled() -> None:
    model = ModAddTransformer(ModAddTransformerConfig(), seed=0)
    again = ModAddTransformer(ModAddTransformerConfig(), seed=0)
    other = ModAddTransformer(ModAddTransformerConfig(), seed=1)
    for (name, param), same, different in zip(model.named_parameters(), again.parameters(),
                                              other.parameters()):
        assert torch.equal(param, same), name
        if name.rsplit(".", 1)[-1].startswith("b_"):
            assert torch.all(param == 0), name
        else:
            assert not torch.equal(param, different), name
    assert model.blocks[0].mlp.W_in.std().item() == pytest.approx(1 / math.sqrt(128), rel=0.02)
    assert model.unembed.W_U.std().item() == pytest.approx(1 / math.sqrt(114), rel=0.02)


def test_forward_shapes_and_hook_names() -> None:
    model = ModAddTransformer(TINY, seed=0)
    tokens = tiny_tokens()
    assert model(tokens).shape == (P * P, P + 1)
    assert model.forward_all_positions(tokens).shape == (P * P, 3, P + 1)
    hook_names = [name for name, module in model.named_modules() if isinstance(module, HookPoint)]
    assert hook_names == HOOK_NAMES
    shapes = {name: tuple(x.shape) for name, x in capture_hook_inputs(model, tokens).items()}
    assert shapes == {
        "blocks.0.hook_resid_pre": (P * P, 3, 16),
        "blocks.0.hook_resid_mid": (P * P, 1, 16),
        "blocks.0.mlp.hook_pre": (P * P, 1, 32),
        "blocks.0.mlp.hook_post": (P * P, 1, 32),
        "blocks.0.hook_resid_post": (P * P, 1, 16),
    }


def test_last_position_paths_equal_all_positions() -> None:
    model = tiny_model()
    tokens = tiny_tokens()
    reference = model.forward_all_positions(tokens)[:, -1]
    torch.testing.assert_close(model(tokens), reference, atol=1e-12, rtol=0)
    torch.testing.assert_close(model.forward_fast(tokens), reference, atol=1e-12, rtol=0)


def test_all_positions_is_causal() -> None:
    model = tiny_model()
    tokens = tiny_tokens()
    changed = tokens.clone()
    changed[:, 1] = (changed[:, 1] + 1) % P
    before, after = model.forward_all_positions(tokens), model.forward_all_positions(changed)
    torch.testing.assert_close(before[:, 0], after[:, 0], atol=0, rtol=0)
    assert not torch.allclose(before[:, 1], after[:, 1])


def test_pre_hook_replaces_the_stream() -> None:
    model = tiny_model()
    tokens = tiny_tokens()
    replacement = torch.randn(len(tokens), 1, 16, dtype=torch.float64)
    handle = model.blocks[0].hook_resid_post.register_forward_pre_hook(
        lambda module, args: replacement
    )
    logits = model(tokens)
    handle.remove()
    expected = replacement[:, -1] @ model.unembed.W_U + model.unembed.b_U
    torch.testing.assert_close(logits, expected, atol=1e-12, rtol=0)
    # Swapping the embedded stream for that of other tokens gives those tokens' logits.
    other = tokens.flip(0)
    handle = model.blocks[0].hook_resid_pre.register_forward_pre_hook(
        lambda module, args: model.embed(other)
    )
    patched = model(tokens)
    handle.remove()
    torch.testing.assert_close(patched, model(other), atol=1e-12, rtol=0)


# --- bias folding -----------------------------------------------------------------------------


def test_folded_equals_unfolded_and_leaves_the_original_alone() -> None:
    model = tiny_model()
    before = {name: param.clone() for name, param in model.state_dict().items()}
    folded = model.fold_bias()
    assert folded is not model and folded.is_bias_folded and not model.is_bias_folded
    assert folded.fold_bias() is folded
    for name, param in model.state_dict().items():
        assert torch.equal(param, before[name]), name
    tokens = tiny_tokens()
    reference = model(tokens)
    torch.testing.assert_close(folded(tokens), reference, atol=1e-10, rtol=0)
    torch.testing.assert_close(folded.forward_fast(tokens), reference, atol=1e-10, rtol=0)
    torch.testing.assert_close(folded.forward_all_positions(tokens),
                               model.forward_all_positions(tokens), atol=1e-10, rtol=0)
    assert all(param.dtype == torch.float64 for param in folded.parameters())
    assert not any(name.rsplit(".", 1)[-1].startswith("b_")
                   for name, _ in folded.named_parameters())


def test_folded_hook_inputs_carry_the_constant() -> None:
    model = tiny_model()
    folded = model.fold_bias()
    tokens = tiny_tokens()
    unfolded_seen = capture_hook_inputs(model, tokens)
    folded_seen = capture_hook_inputs(folded, tokens)
    assert list(folded_seen) == HOOK_NAMES
    for name in HOOK_NAMES:
        stream, with_constant = unfolded_seen[name], folded_seen[name]
        assert torch.all(with_constant[..., -1] == 1.0), name  # exactly 1, not approximately
        ones = torch.ones(*stream.shape[:-1], 1, dtype=stream.dtype)
        torch.testing.assert_close(with_constant, torch.cat([stream, ones], -1), atol=1e-10, rtol=0)


def test_paper_size_fold() -> None:
    model = ModAddTransformer(ModAddTransformerConfig(), seed=0).double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("b_"):
                param.normal_(generator=torch.Generator().manual_seed(len(name)))
    tokens = make_modadd_split().test_tokens[:256]
    folded = model.fold_bias()
    assert folded.embed.W_E.shape == (114, 129) and folded.blocks[0].mlp.W_in.shape == (129, 513)
    assert folded.blocks[0].attn.W_V.shape == (4, 129, 33)
    torch.testing.assert_close(folded(tokens), model(tokens), atol=1e-10, rtol=0)


def test_folded_model_is_differentiable_through_a_replaced_hook_input() -> None:
    folded = tiny_model().fold_bias()
    tokens = tiny_tokens()
    mid = capture_hook_inputs(folded, tokens)["blocks.0.hook_resid_mid"]

    def logits_from_mid(x: Tensor) -> Tensor:
        handle = folded.blocks[0].hook_resid_mid.register_forward_pre_hook(lambda m, args: x)
        try:
            return folded(tokens)
        finally:
            handle.remove()

    torch.testing.assert_close(logits_from_mid(mid), folded(tokens), atol=1e-12, rtol=0)
    # torch.func: vjp with a vmap over cotangents gives the full Jacobian, as autograd does.
    logits, vjp_fn = torch.func.vjp(logits_from_mid, mid)
    eye = torch.eye(logits.shape[-1], dtype=torch.float64)
    cotangents = eye[:, None, :].expand(-1, *logits.shape)  # (d_vocab, B, d_vocab)
    (jacobian,) = torch.func.vmap(vjp_fn)(cotangents)  # (d_vocab, B, 1, d + 1)
    x = mid.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(logits_from_mid(x)[:, 3].sum(), x)
    torch.testing.assert_close(jacobian[3], grad, atol=1e-12, rtol=0)
    # The constant hidden unit is a real unit: the logits depend on the constant coordinate.
    assert grad[..., -1].abs().sum() > 0
