"""The free-parameter count of interbasis.analysis.free_params: sections, D, the counting rule."""

import pytest
import torch
from torch import nn

from interbasis.analysis.free_params import free_parameters, section_sizes


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_sections_hold_every_parameter_once_and_each_node_layer_its_dimension():
    sizes = section_sizes(mlp(), torch.randn(5, 4), ["0", "2", "output"],
                          relu_layers=["2", "output"])  # a model ending in a ReLU names "output"
    assert sizes["model/params_into/2"] == 4 * 3 + 3  # Linear 0 ends at node layer 2
    assert sizes["model/params_into/output"] == 3 * 2 + 2
    assert "model/params_into/0" in sizes and sizes["model/params_into/0"] == 0
    assert sizes["model/dim/0"] == 5 and sizes["model/dim/2"] == 4  # the constant included
    assert sizes["model/dim/output"] == 2


def test_counting_rule_on_a_two_layer_mlp():
    sizes = section_sizes(mlp(), torch.randn(5, 4), ["0", "2", "output"], relu_layers=["2"])
    full = {"rank/gram/0": 5, "rank/gram/2": 4, "rank/jacobian/2": 4}
    assert free_parameters(sizes, full)["free/total"] == 0  # full rank: nothing free
    ranks = {**full, "rank/gram/0": 3, "rank/jacobian/2": 2, "degeneracy/relu_sync/2": 0.5}
    free = free_parameters(sizes, ranks)
    assert free["free/activations"] == pytest.approx(15 * (1 - 3 / 5))
    assert free["free/jacobians"] == pytest.approx(15 * 3 / 5 * (1 - 2 / 4))
    assert free["free/relu"] == pytest.approx(3 * (1 / 0.5 - 1))  # 3 neurons, equal groups
    assert free["free/total"] == pytest.approx(6 + 4.5 + 3)
    assert free["free/effective"] == pytest.approx(23 - 13.5)


def test_a_tied_weight_gets_the_mean_free_fraction_of_its_uses():
    sizes = {"model/params_into/1": 10, "model/params_into/output": 10, "model/dim/1": 5,
             "model/dim/output": 4}
    ranks = {"rank/gram/1": 1, "rank/jacobian/1": 5}  # the second use: 8 of 10 free
    assert free_parameters(sizes, ranks)["free/total"] == pytest.approx(8)
    tied = free_parameters(sizes, ranks, n_params=10)  # one W used twice: 8 of 20 -> 4 of 10
    assert tied["free/total"] == pytest.approx(4) and tied["free/effective"] == pytest.approx(6)


def test_node_layer_that_is_not_a_module_is_one_clear_error():
    with pytest.raises(ValueError, match="not modules of the model"):
        section_sizes(mlp(), torch.randn(5, 4), ["0", "nope", "output"])
