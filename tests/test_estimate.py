"""``python -m interbasis.estimate``: a per-layer and total prediction before a run."""

import re

import pytest

from interbasis import estimate


def test_estimate_prints_per_layer_and_total_predictions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    estimate.main(["debug=tiny", "progress=false", "--samples", "16", "32"])
    out = capsys.readouterr().out
    for layer in ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "output"):
        assert re.search(rf"^{re.escape(layer)}\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", out, re.M), out
    total = re.search(r"predicted: build ([\d.]+) s, ablations ([\d.]+) s, total ([\d.]+) s; "
                      r"peak memory (-?\d+) MB", out)
    assert total is not None, out
    build, abl, whole = map(float, total.groups()[:3])
    assert whole == pytest.approx(build + abl, abs=0.11) and whole > 0


def test_linear_fit_extrapolates_and_never_undercuts_the_measurement():
    assert estimate.linear_fit(10, 1.5, 20, 2.0, 40) == pytest.approx(3.0)  # a + b n
    assert estimate.linear_fit(10, 2.0, 20, 1.0, 40) == 1.0  # noise: no negative slope
    assert estimate.linear_fit(10, 0.1, 20, 2.0, 40) == pytest.approx(4.0)  # at most proportional
    assert estimate.linear_fit(16, 1.0, 16, 1.0, 32) == pytest.approx(2.0)  # one size only
