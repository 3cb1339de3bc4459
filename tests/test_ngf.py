"""Naive gradient flow (method="ngf", basis/ngf.py): each basis from the Jacobian of the whole
rest of the network. The last two layers' bases are LIB's exactly, earlier ones differ, and the
first layer's M' is the full network's Jacobian Gram computed here independently."""

from __future__ import annotations

import torch

from conftest import MLP_LAYERS
from gpt_tiny import perturbed_model, tokens
from interbasis import build_graph
from interbasis.basis.fold import fold_bias
from modadd_tiny import tiny_model, tiny_tokens

MODADD_LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                 "blocks.0.hook_resid_post", "output"]


def lib_and_ngf(model, data, layers):
    return (build_graph(model, data, layers, method="lib"),
            build_graph(model, data, layers, method="ngf"))


def assert_last_two_equal_and_earlier_differ(lib, ngf):
    for index in (-2, -1):
        assert torch.equal(lib.layers[index].C, ngf.layers[index].C)
        assert torch.equal(lib.layers[index].eigenvalues, ngf.layers[index].eigenvalues)
    assert torch.equal(lib.edges[-1], ngf.edges[-1])
    for index in range(len(lib.layers) - 2):
        lib_M = lib.layers[index].jacobian_eigenvalues
        ngf_M = ngf.layers[index].jacobian_eigenvalues
        assert not torch.allclose(lib_M, ngf_M, rtol=1e-3), index
        if lib.layers[index].rank == ngf.layers[index].rank:
            assert not torch.allclose(lib.layers[index].C.abs(), ngf.layers[index].C.abs(),
                                      atol=1e-6), index


def test_mlp_last_two_layers_are_lib_and_earlier_ones_differ(mlp, inputs):
    lib, ngf = lib_and_ngf(mlp, inputs, MLP_LAYERS)
    assert ngf.method == "ngf" and len(ngf.edges) == 3
    assert_last_two_equal_and_earlier_differ(lib, ngf)


def test_modadd_last_two_layers_are_lib_and_earlier_ones_differ():
    lib, ngf = lib_and_ngf(tiny_model(0), tiny_tokens(), MODADD_LAYERS)
    assert_last_two_equal_and_earlier_differ(lib, ngf)
    assert [e.shape for e in ngf.edges] == [
        (ngf.layers[i + 1].rank, ngf.layers[i].rank) for i in range(3)]


def test_first_layer_jacobian_gram_is_the_whole_network(mlp, inputs):
    """M'_0 = mean_n J_n^T J_n, J_n the Jacobian of the folded MLP's output (the unrotated
    logits: C_L = I) w.r.t. its folded input [x, 1]; its spectrum is what NGF's layer 0 keeps."""
    folded = fold_bias(mlp).double()
    network = torch.nn.Sequential(*folded)  # the modules after the constant is appended
    z = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=torch.float64)], dim=1)
    J = torch.func.vmap(torch.func.jacrev(network))(z)  # (N, out, d_in)
    M = torch.einsum("noi,noj->ij", J, J) / len(z)
    expected = torch.linalg.eigvalsh(M).abs().sort(descending=True).values
    ngf = build_graph(mlp, inputs, MLP_LAYERS, method="ngf", edges=False)
    torch.testing.assert_close(ngf.layers[0].jacobian_eigenvalues, expected, rtol=1e-8,
                               atol=1e-10)


def test_ngf_with_and_without_the_fast_paths_agree(mlp, inputs):
    fast = build_graph(mlp, inputs, MLP_LAYERS, method="ngf")
    generic = build_graph(mlp, inputs, MLP_LAYERS, method="ngf", fast_paths=False)
    for a, b in zip(fast.layers[:-1], generic.layers[:-1]):
        torch.testing.assert_close(a.jacobian_eigenvalues, b.jacobian_eigenvalues, rtol=1e-8,
                                   atol=1e-10)
    for a, b in zip(fast.edges, generic.edges):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_tiny_gpt_sections_compose_too():
    """A 2-block GPT (many positions, LayerNorm): NGF runs on it and keeps the last two layers."""
    layers = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "ln_final", "output"]
    lib, ngf = lib_and_ngf(perturbed_model(), tokens(12), layers)
    assert_last_two_equal_and_earlier_differ(lib, ngf)
