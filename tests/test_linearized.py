"""The analytic fast path agrees with the generic autograd path (docs/method.md §4.4)."""

import pytest
import torch
from torch import nn

from interbasis import build_graph
from interbasis.basis.linearized import residual_mlp_section


class ResidualMLP(nn.Module):
    """An already-folded residual MLP block with positions: (B, 3, 5) -> logits (B, 4)."""

    is_bias_folded = True

    def __init__(self, activation):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w_in = nn.Parameter(torch.randn(9, 6, generator=generator, dtype=torch.float64))
        self.w_out = nn.Parameter(torch.randn(6, 9, generator=generator, dtype=torch.float64) / 3)
        with torch.no_grad():
            self.w_in[-1] = 0.0
            self.w_in[-1, -1] = 1.0  # the constant unit: act(r1) = 1 is not needed for a skip
            self.w_out[-1] = 0.0  # nothing writes the residual's constant coordinate
        self.activation = activation
        self.pre, self.post = nn.Identity(), nn.Identity()
        self.unembed = nn.Linear(6, 4, bias=False).double()

    def forward(self, x):
        x = self.pre(torch.cat([x, torch.ones_like(x[..., :1])], -1))
        x = self.post(x + self.activation(x @ self.w_in.T) @ self.w_out.T)
        return self.unembed(x).sum(1)

    def linearize_section(self, name_in, name_out):
        if (name_in, name_out) == ("pre", "post"):
            return residual_mlp_section(self.w_in, self.w_out, self.activation)
        return None


def assert_same_graph(fast, generic):
    for a, b in zip(fast.layers, generic.layers):
        torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-12, rtol=1e-9)
        torch.testing.assert_close(a.C @ a.C_pinv, b.C @ b.C_pinv, atol=1e-8, rtol=0)
    for a, b in zip(fast.edges, generic.edges):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize(("activation", "integration", "n_intervals"), [
    (nn.ReLU, "gradient", 0), (nn.GELU, "gradient", 0), (nn.GELU, "trapezoidal", 3),
    (nn.GELU, "gauss-legendre", 2), (nn.Identity, "gradient", 0)])
@pytest.mark.parametrize("method", ["lib", "pca"])
def test_sequential_fast_path_equals_generic(inputs, activation, integration, n_intervals, method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 9), activation(), nn.Linear(9, 7), activation(),
                          nn.Linear(7, 4)).double()
    kwargs = dict(method=method, integration=integration, n_intervals=n_intervals, batch_size=128)
    fast = build_graph(model, inputs, ["0", "2", "4", "output"], **kwargs)
    generic = build_graph(model, inputs, ["0", "2", "4", "output"], fast_paths=False, **kwargs)
    assert_same_graph(fast, generic)


@pytest.mark.parametrize("activation", [torch.relu, nn.functional.gelu])
def test_residual_fast_path_equals_generic(activation):
    model = ResidualMLP(activation)
    x = torch.randn(200, 3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fast = build_graph(model, x, ["pre", "post", "output"], batch_size=64)
    generic = build_graph(model, x, ["pre", "post", "output"], fast_paths=False, batch_size=64)
    assert_same_graph(fast, generic)
    assert fast.layers[0].n_positions == 3


@pytest.mark.parametrize("method", ["lib", "pca"])
def test_modadd_fast_paths_equal_generic(method):
    """The transformer's fast paths: MLP block and unembedding (linearized), attention (dense)."""
    from interbasis.data.modadd import all_pairs
    from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig

    cfg = ModAddTransformerConfig(d_vocab=8, d_model=12, n_heads=2, d_head=5, d_mlp=20)
    model = ModAddTransformer(cfg, seed=1).double()
    tokens = all_pairs(7)[0]
    layers = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
              "output"]
    folded = model.fold_bias()
    assert folded.linearize_section(*layers[1:3]) is not None
    assert folded.linearize_section(*layers[2:4]) is not None
    assert folded.section_jacobian(*layers[0:2]) is not None
    fast = build_graph(model, tokens, layers, method=method)
    generic = build_graph(model, tokens, layers, method=method, fast_paths=False)
    assert_same_graph(fast, generic)
