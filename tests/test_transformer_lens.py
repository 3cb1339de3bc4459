"""Loading TransformerLens state dicts (the LIB authors' modular-addition models).

The tests on the authors' five checkpoints need the shared copy (``../shared/data/rib_modadd``
beside the repository, or ``INTERBASIS_RIB``); they skip in one line without it. The key, shape
and folder-layout tests build their own state dicts and always run.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from authors_files import AUTHORS_ACCURACY, RIB_DIR, needs_authors, tl_state_of
from interbasis.data.modadd import all_pairs, make_modadd_split
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.models.transformer_lens import (
    TransformerLensCheckpointError,
    find_checkpoint,
    load_transformer_lens,
    state_dict_from_transformer_lens,
)


def tl_formula_logits(state: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """TransformerLens' forward written out in float64 from the raw state dict: every position,
    causal mask, scores / sqrt(d_head), attn + MLP residual, no LayerNorm. Logits (B, P, V)."""
    w = {k: v.double() for k, v in state.items() if v.is_floating_point()}
    attn, mlp = "blocks.0.attn.", "blocks.0.mlp."
    resid = w["embed.W_E"][tokens] + w["pos_embed.W_pos"][: tokens.shape[1]]
    q = torch.einsum("bpd,hde->bphe", resid, w[attn + "W_Q"]) + w[attn + "b_Q"]
    k = torch.einsum("bpd,hde->bphe", resid, w[attn + "W_K"]) + w[attn + "b_K"]
    v = torch.einsum("bpd,hde->bphe", resid, w[attn + "W_V"]) + w[attn + "b_V"]
    scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])
    causal = state[attn + "mask"].bool()
    pattern = scores.masked_fill(~causal, -math.inf).softmax(-1)
    z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
    resid = resid + torch.einsum("bqhe,hed->bqd", z, w[attn + "W_O"]) + w[attn + "b_O"]
    hidden = F.relu(resid @ w[mlp + "W_in"] + w[mlp + "b_in"])
    resid = resid + hidden @ w[mlp + "W_out"] + w[mlp + "b_out"]
    return resid @ w["unembed.W_U"] + w["unembed.b_U"]


def test_round_trip_of_our_own_weights_in_transformer_lens_form():
    model = ModAddTransformer(ModAddTransformerConfig(), seed=3)
    loaded = state_dict_from_transformer_lens(tl_state_of(model), model.cfg)
    assert loaded.keys() == model.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_a_different_width_is_refused_in_one_line():
    state = tl_state_of(ModAddTransformer(ModAddTransformerConfig(d_mlp=256), seed=0))
    with pytest.raises(TransformerLensCheckpointError) as error:
        state_dict_from_transformer_lens(state, ModAddTransformerConfig(), "ckpt.pt")
    message = str(error.value)
    assert "\n" not in message
    assert "blocks.0.mlp.W_in has shape (128, 256)" in message and "(128, 512)" in message


def test_layernorm_or_a_second_block_is_refused_by_name():
    state = tl_state_of(ModAddTransformer(ModAddTransformerConfig(), seed=0))
    state["blocks.0.ln1.w"] = torch.ones(128)
    state["blocks.1.attn.W_Q"] = torch.zeros(4, 128, 32)
    with pytest.raises(TransformerLensCheckpointError, match=r"unexpected keys .*ln1\.w"):
        state_dict_from_transformer_lens(state, ModAddTransformerConfig())
    del state["blocks.0.ln1.w"], state["blocks.1.attn.W_Q"], state["unembed.b_U"]
    with pytest.raises(TransformerLensCheckpointError, match=r"missing keys \['unembed.b_U'\]"):
        state_dict_from_transformer_lens(state, ModAddTransformerConfig())


def test_not_a_state_dict_or_no_file_is_one_line(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(TransformerLensCheckpointError, match="expected a plain state dict"):
        load_transformer_lens(tmp_path / "list.pt", ModAddTransformerConfig())
    with pytest.raises(TransformerLensCheckpointError, match="does not exist"):
        load_transformer_lens(tmp_path / "none.pt", ModAddTransformerConfig())


def test_find_checkpoint_in_both_layouts(tmp_path):
    flat = tmp_path / "flat" / "seed2"
    flat.mkdir(parents=True)
    (flat / "model_epoch_60000.pt").touch()
    assert find_checkpoint(tmp_path / "flat", 2) == flat / "model_epoch_60000.pt"
    runs = tmp_path / "rib" / "rib_scripts" / "train_modular_arithmetic" / "sample_checkpoints"
    for seed, name in [(0, "lr-0.001_bs-10000_norm-None_2023-11-28_16-07-19"),
                       (1, "seed1-lr-0.001_bs-10000_norm-None_2023-12-06_14-49-21")]:
        (runs / name).mkdir(parents=True)
        (runs / name / "config.yaml").write_text(f"dataset:\n  seed: 0\nseed: {seed}\n")
        (runs / name / "model_epoch_60000.pt").touch()
    assert find_checkpoint(tmp_path / "rib", 0).parent.name.startswith("lr-0.001")
    assert find_checkpoint(tmp_path / "rib", 1).parent.name.startswith("seed1-")
    assert find_checkpoint(runs, 1).parent.name.startswith("seed1-")  # sample_checkpoints itself
    with pytest.raises(TransformerLensCheckpointError, match="found none"):
        find_checkpoint(tmp_path / "rib", 4)
    with pytest.raises(TransformerLensCheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nowhere", 0)


@needs_authors
def test_authors_seed0_logits_equal_the_transformer_lens_formula_on_every_pair():
    state = torch.load(RIB_DIR / "seed0" / "model_epoch_60000.pt", map_location="cpu",
                       weights_only=True)
    tokens, _ = all_pairs(113)  # all 12,769 inputs
    expected = tl_formula_logits(state, tokens)
    model = load_transformer_lens(RIB_DIR / "seed0" / "model_epoch_60000.pt",
                                  ModAddTransformerConfig())
    with torch.no_grad():
        torch.testing.assert_close(model.double()(tokens), expected[:, -1], rtol=1e-12,
                                   atol=1e-10)
        torch.testing.assert_close(model.forward_all_positions(tokens), expected, rtol=1e-12,
                                   atol=1e-10)
        torch.testing.assert_close(model.float().forward_fast(tokens).double(), expected[:, -1],
                                   rtol=1e-4, atol=1e-3)  # float32, as the runs use it


@needs_authors
@pytest.mark.parametrize("seed", range(5))
def test_each_authors_checkpoint_reproduces_its_accuracy(seed):
    model = load_transformer_lens(find_checkpoint(RIB_DIR, seed), ModAddTransformerConfig())
    split = make_modadd_split()
    with torch.no_grad():
        test_acc = (model(split.test_tokens).argmax(-1) == split.test_labels).double().mean()
        train_acc = (model(split.train_tokens).argmax(-1) == split.train_labels).double().mean()
    assert round(test_acc.item(), 5) == AUTHORS_ACCURACY[seed]
    assert train_acc.item() == 1.0


# --- the split ----------------------------------------------------------------------------------


def test_our_split_is_the_authors_random_split():
    """ApolloResearch/rib (rib/loader.py, rib/utils.py train_test_split) builds the pairs a-major
    as (a, b, p) and splits them with torch.utils.data.random_split([int(N * frac_train), rest],
    generator=torch.Generator().manual_seed(seed)); written out here with torch's own function."""
    tokens, labels = all_pairs(113)
    n_train = int(len(tokens) * 0.3)
    train, test = torch.utils.data.random_split(
        range(len(tokens)), [n_train, len(tokens) - n_train],
        generator=torch.Generator().manual_seed(0))
    ours = make_modadd_split(p=113, train_fraction=0.3, data_seed=0)
    assert n_train == 3830
    assert torch.equal(ours.train_tokens, tokens[list(train.indices)])
    assert torch.equal(ours.test_tokens, tokens[list(test.indices)])
    assert torch.equal(ours.test_labels, labels[list(test.indices)])


@needs_authors
def test_the_authors_models_were_trained_on_our_train_split():
    """Each model fits the pairs it was trained on better than the rest: the median loss on our
    train split over that on our test split is lower than for any of 10 other random splits."""
    tokens, labels = all_pairs(113)
    orders = [torch.randperm(len(tokens), generator=torch.Generator().manual_seed(data_seed))
              for data_seed in range(11)]  # data seed 0 is ours (make_modadd_split's order)
    assert torch.equal(tokens[orders[0][:3830]], make_modadd_split().train_tokens)
    for seed in range(5):
        model = load_transformer_lens(find_checkpoint(RIB_DIR, seed), ModAddTransformerConfig())
        with torch.no_grad():
            loss = F.cross_entropy(model.double()(tokens), labels, reduction="none")
        ratios = [(loss[order[:3830]].median() / loss[order[3830:]].median()).item()
                  for order in orders]
        assert ratios[0] < min(ratios[1:]), (seed, ratios)
