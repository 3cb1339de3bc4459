"""Vectorised Jacobians against a per-sample loop, integration rules, stochastic sources."""

import math

import pytest
import torch
from torch import nn

from conftest import MLP_LAYERS
from interbasis import build_graph
from interbasis.basis.fold import fold_bias
from interbasis.basis.graph import Batches, _jacobian_gram
from interbasis.basis.jacobian import integration_points
from interbasis.basis.sections import capture, section


class PositionMixer(nn.Module):
    """A tiny already-folded model with positions: (B, 4, 3) -> mixed (B, 2, 4) -> logits (B, 3)."""

    is_bias_folded = True

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.mix = nn.Parameter(torch.randn(2, 4, generator=generator, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(4, 4, generator=generator, dtype=torch.float64))
        self.pre = nn.Identity()
        self.mid = nn.Identity()
        self.unembed = nn.Linear(4, 3, bias=False).double()

    def forward(self, x):
        ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype)
        x = self.pre(torch.cat([x, ones], -1))  # (B, 4 positions, 4)
        hidden = torch.relu(torch.einsum("ts,bsd->btd", self.mix, x[..., :-1]) @ self.w[:3, :3])
        ones = torch.ones(*hidden.shape[:-1], 1, dtype=x.dtype)
        h = self.mid(torch.cat([hidden, ones], -1))  # (B, 2 positions, 4)
        return self.unembed(h).sum(1)


def reference_jacobian_gram(fn, xs, C_next):
    """M' from one torch.autograd.functional.jacobian call per sample."""
    total, count = 0.0, 0
    for x in xs:
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0] @ C_next, x)
        rows = J.reshape(-1, x.shape[-1])  # (P_out * r_out * P_in, d_in)
        total = total + rows.T @ rows
        count += x.reshape(-1, x.shape[-1]).shape[0]
    return total / count


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("model_kind", ["mlp", "positions"])
def test_vectorised_jacobian_gram_matches_per_sample_loop(mlp, model_kind, fast):
    generator = torch.Generator().manual_seed(3)
    if model_kind == "mlp":
        model, names = fold_bias(mlp), ["2", "4"]
        data = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    else:
        model, names = PositionMixer(), ["pre", "mid"]
        data = torch.randn(40, 4, 3, generator=generator, dtype=torch.float64)
    acts = capture(model, data, names)
    x = acts[names[0]]
    C_next = torch.randn(acts[names[1]].shape[-1], 3, generator=generator, dtype=torch.float64)
    batches = Batches(data, 16, torch.float64, torch.device("cpu"))
    vectorised = _jacobian_gram(model, batches, names[0], names[1], C_next, [1.0], [1.0], None,
                                torch.Generator(), fast=fast)
    reference = reference_jacobian_gram(section(model, data, *names), x, C_next)
    torch.testing.assert_close(vectorised, reference, atol=1e-12, rtol=1e-10)


def test_trapezoidal_and_gauss_legendre_rules():
    assert integration_points("gradient") == ([1.0], [1.0])
    assert integration_points("trapezoidal", 0) == ([0.5], [1.0])
    for n in (1, 3, 10):
        alphas, weights = integration_points("trapezoidal", n)
        assert len(alphas) == n + 1 and math.isclose(sum(weights), 1.0)
        assert 0 < alphas[0] < 1e-3 and 1 - 1e-3 < alphas[-1] < 1
        # exact for linear integrands, close for smooth ones
        assert math.isclose(sum(w * (2 * a) for a, w in zip(alphas, weights)), 1.0, rel_tol=1e-12)
        error = abs(sum(w * a**2 for a, w in zip(alphas, weights)) - 1 / 3)
        assert error < 0.2 / n**2
    for n in (0, 2, 5):
        alphas, weights = integration_points("gauss-legendre", n)
        for degree in range(2 * n + 2):  # n + 1 nodes integrate degree <= 2n + 1 exactly
            integral = sum(w * a**degree for a, w in zip(alphas, weights))
            assert math.isclose(integral, 1 / (degree + 1), rel_tol=1e-12)


@pytest.mark.parametrize("bad", [("simpson", 2), ("trapezoidal", -1), ("gradient", 1.5)])
def test_bad_integration_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="integration|n_intervals"):
        integration_points(*bad)


def test_integrated_gradients_on_a_linear_section_do_not_depend_on_intervals():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Identity(), nn.Linear(6, 5)).double()
    x = torch.randn(200, 4, dtype=torch.float64)
    plain = build_graph(model, x, ["0", "2", "output"])
    for integration, n in [("trapezoidal", 0), ("trapezoidal", 3), ("gauss-legendre", 4)]:
        other = build_graph(model, x, ["0", "2", "output"], integration=integration, n_intervals=n)
        for a, b in zip(plain.layers, other.layers):
            torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-12, rtol=1e-9)
        for a, b in zip(plain.edges, other.edges):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-9)


def test_folded_relu_sections_are_homogeneous_so_integration_changes_nothing(mlp, inputs):
    # alpha scales the constant too: relu(alpha x W) = alpha relu(x W), so J(alpha x) = J(x)
    plain = build_graph(mlp, inputs, MLP_LAYERS)
    integrated = build_graph(mlp, inputs, MLP_LAYERS, integration="trapezoidal", n_intervals=4)
    for a, b in zip(plain.edges, integrated.edges):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-9)


def test_integrated_gradients_change_a_gelu_section(inputs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 4)).double()
    plain = build_graph(model, inputs, ["0", "2", "output"])
    integrated = build_graph(model, inputs, ["0", "2", "output"], integration="trapezoidal",
                             n_intervals=4)
    difference = (plain.layers[0].eigenvalues[:3] - integrated.layers[0].eigenvalues[:3]).abs()
    assert difference.max() > 1e-3 * plain.layers[0].eigenvalues[0]


def test_stochastic_sources_with_one_output_position_are_exact(mlp, inputs):
    exact = build_graph(mlp, inputs, MLP_LAYERS)
    probed = build_graph(mlp, inputs, MLP_LAYERS, n_sources=1, seed=5)
    for a, b in zip(exact.edges, probed.edges):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=1e-12)


def test_stochastic_source_error_falls_as_sources_grow():
    model = PositionMixer()
    data = torch.randn(300, 4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batches = Batches(data, None, torch.float64, torch.device("cpu"))
    C_next = torch.eye(4, dtype=torch.float64)

    def gram(n_sources, seed=0):
        return _jacobian_gram(model, batches, "pre", "mid", C_next, [1.0], [1.0], n_sources,
                              torch.Generator().manual_seed(seed))

    exact = gram(None)
    errors = {}
    for n_sources in (1, 8, 64):
        errors[n_sources] = sum((gram(n_sources, seed) - exact).norm().item()
                                for seed in range(3)) / exact.norm().item()
    assert errors[64] < errors[8] < errors[1]
    assert errors[64] < 0.1
