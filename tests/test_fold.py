"""Bias folding: folded == unfolded, and the constant coordinate reaches every node layer."""

import pytest
import torch
from torch import nn

from interbasis.basis.fold import FoldError, constant_preimage, fold_bias, is_folded
from interbasis.basis.sections import capture


@pytest.mark.parametrize("activation", [nn.ReLU, nn.GELU, nn.Identity])
def test_folded_equals_unfolded(activation):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), activation(), nn.Linear(7, 6), activation(),
                          nn.Linear(6, 3)).double()
    x = torch.randn(50, 5, dtype=torch.float64)
    folded = fold_bias(model)
    torch.testing.assert_close(folded(x), model(x), atol=1e-10, rtol=0)


def test_constant_coordinate_at_every_linear_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 5), nn.GELU(),
                          nn.Linear(5, 2)).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    acts = capture(fold_bias(model), x, ["0", "2", "4"])
    for name in ["0", "2", "4"]:
        assert torch.equal(acts[name][:, -1], torch.ones(30, dtype=torch.float64))
    # the first node layer is [x, 1]: folding only appends
    torch.testing.assert_close(acts["0"][:, :-1], x)


def test_gelu_constant_preimage_maps_to_one():
    r1 = constant_preimage(nn.GELU())
    value = nn.GELU()(torch.tensor(r1, dtype=torch.float64)).item()
    assert abs(value - 1.0) < 1e-14
    assert constant_preimage(nn.ReLU()) == 1.0
    assert constant_preimage(nn.GELU(approximate="tanh")) != r1


def test_folding_copies_and_is_idempotent():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.clone() for p in model.parameters()]
    folded = fold_bias(model)
    assert is_folded(folded) and not is_folded(model)
    assert fold_bias(folded) is folded
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # folded layers have no biases: they live in the constant row
    assert all(m.bias is None for m in folded if isinstance(m, nn.Linear))


def test_unfoldable_models_raise_clear_errors():
    with pytest.raises(FoldError, match="Softmax"):
        fold_bias(nn.Sequential(nn.Linear(3, 3), nn.Softmax(-1), nn.Linear(3, 2)))
    with pytest.raises(FoldError, match="fold_bias"):
        fold_bias(nn.LSTM(3, 3))
    with pytest.raises(FoldError, match="without any nn.Linear"):
        fold_bias(nn.Sequential(nn.ReLU()))


def test_self_folding_protocol_is_used():
    class Custom(nn.Module):
        def forward(self, x):
            return x

        def fold_bias(self):
            folded = Custom()
            folded.is_bias_folded = True
            return folded

    assert is_folded(fold_bias(Custom()))

    class Broken(Custom):
        def fold_bias(self):
            return Custom()

    with pytest.raises(FoldError, match="is_bias_folded"):
        fold_bias(Broken())
