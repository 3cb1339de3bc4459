"""The end-of-run report and the fixed ablation subsample."""

import torch

from interbasis.pipeline import subsample
from interbasis.results.report import format_run_summary


def test_report_lists_layers_transitions_and_totals():
    summary = {"method": "lib", "model": "modadd", "seed": 3,
               "rank/basis/a": 116, "rank/basis/b": 98, "sparsity/lambda_99/a": 9,
               "ablation/k_required@0.001/a": 10, "sparsity/edges_99/a->b": 59,
               "ablation/edges_required@0.001/a->b": 45,
               "ablation/edges_required@0.001/total": 45, "modularity/q": 0.30641}
    lines = format_run_summary(summary).splitlines()
    assert lines[0] == "LIB on modadd, seed 3"
    row_a = next(line for line in lines if line.split()[:1] == ["a"])
    assert row_a.split() == ["a", "116", "9", "10"]
    assert next(line for line in lines if line.split()[:1] == ["b"]).split() == ["b", "98", "-",
                                                                                 "-"]
    assert next(line for line in lines if line.split()[:1] == ["a->b"]).split() == [
        "a->b", "59", "45"]
    assert lines[-2:] == ["ablation/edges_required@0.001/total: 45", "modularity/q: 0.3064"]


def test_subsample_is_fixed_ordered_and_keeps_pairs_together():
    inputs = torch.arange(100).reshape(50, 2)
    targets = torch.arange(50)
    x, y = subsample((inputs, targets), 20)
    assert len(x) == len(y) == 20 and torch.equal(inputs[y], x)
    assert torch.equal(y, y.sort().values) and len(set(y.tolist())) == 20
    assert torch.equal(subsample((inputs, targets), 20)[1], y)  # the same subset every time
    assert subsample((inputs, targets), 50)[0] is inputs
