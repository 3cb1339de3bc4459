"""The fast masked evaluation of edge ablations equals the generic vmapped one (basis/masked.py)."""

import pytest
import torch
from torch import nn

from conftest import trained_blob_classifier
from interbasis import build_graph, edge_ablation
from interbasis.basis.ablation import edge_ablated_forward, prepare_model
from interbasis.basis.masked import InputMap, masked_next_features, section_input_map
from interbasis.basis.sections import run_model
from interbasis.data.modadd import all_pairs
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig

MODADD_LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                 "blocks.0.hook_resid_post", "output"]


def random_mask(shape: tuple[int, int], keep: float, seed: int) -> torch.Tensor:
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < keep
    mask[:, 0] = True  # the constant column is always kept
    return mask


def assert_fast_equals_generic(model: nn.Module, graph, inputs: torch.Tensor, keep: float):
    folded = prepare_model(model, torch.float64)
    for index, edges in enumerate(graph.edges):
        assert section_input_map(folded, graph.layers[index].name,
                                 graph.layers[index + 1].name) is not None
        mask = random_mask(tuple(edges.shape), keep, seed=index)
        fast = edge_ablated_forward(folded, graph, index, mask, torch.float64)
        generic = edge_ablated_forward(folded, graph, index, mask, torch.float64,
                                       fast_paths=False)
        with torch.no_grad():
            expected = run_model(generic, inputs)
            torch.testing.assert_close(run_model(fast, inputs), expected, atol=1e-10, rtol=1e-10)
            if keep < 1:  # the ablation must change something, or the comparison proves little
                assert not torch.allclose(expected, run_model(folded, inputs), atol=1e-6)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.GELU, nn.Identity])
@pytest.mark.parametrize("keep", [0.3, 1.0])
def test_mlp_sections(activation, keep):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 9), activation(), nn.Linear(9, 7), activation(),
                          nn.Linear(7, 3)).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    graph = build_graph(model, x, ["0", "2", "4", "output"], method="lib")
    assert_fast_equals_generic(model, graph, x, keep)


@pytest.mark.parametrize("method", ["lib", "pca"])
def test_modadd_attention_mlp_and_unembedding_sections(method):
    p = 7
    cfg = ModAddTransformerConfig(d_vocab=p + 1, d_model=12, n_heads=2, d_head=5, d_mlp=20)
    model = ModAddTransformer(cfg, seed=3).double()
    with torch.no_grad():  # non-zero biases, so the constant features matter
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("b_"):
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    tokens = all_pairs(p)[0]
    graph = build_graph(model, tokens, MODADD_LAYERS, method=method)
    assert_fast_equals_generic(model, graph, tokens, keep=0.4)


def test_edge_ablation_result_is_the_same_on_both_paths():
    model, x, y = trained_blob_classifier()
    graph = build_graph(model, x, ["0", "2", "4", "output"], method="lib")
    for index in range(len(graph.edges)):
        fast = edge_ablation(model, graph, index, (x, y), delta=0.001)
        generic = edge_ablation(model, graph, index, (x, y), delta=0.001, fast_paths=False)
        assert fast.n_required == generic.n_required
        assert fast.evaluations.keys() == generic.evaluations.keys()
        for n, score in fast.evaluations.items():
            assert score == pytest.approx(generic.evaluations[n], abs=1e-12)


def test_skip_only_map_is_one_masked_matmul():
    features = torch.randn(10, 1, 4, dtype=torch.float64)
    skip = torch.randn(4, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    eye = torch.eye(4, dtype=torch.float64)
    got = masked_next_features(InputMap(None, None, None, skip=skip), features, mask, eye,
                               torch.eye(3, dtype=torch.float64))
    expected = torch.stack([(features * mask[i]) @ skip[:, i] for i in range(3)], dim=-1)
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="needs a core"):
        masked_next_features(InputMap(None, None, None), features, mask, eye, eye[:3, :3])
