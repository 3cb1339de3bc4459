"""``python -m interbasis.estimate``: a per-layer and total prediction before a run."""

import re

import pytest
import torch

from interbasis import estimate


def test_estimate_prints_per_layer_and_total_predictions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    estimate.main(["debug=tiny", "progress=false", "--samples", "16", "32"])
    out = capsys.readouterr().out
    for layer in ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "output"):
        assert re.search(rf"^{re.escape(layer)}\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", out, re.M), out
    total = re.search(r"predicted: build ([\d.]+) s, ablations ([\d.]+) s, total ([\d.]+) s; "
                      r"peak memory up to (-?\d+) MB", out)
    assert total is not None, out
    build, abl, whole = map(float, total.groups()[:3])
    assert whole == pytest.approx(build + abl, abs=0.11) and whole > 0


def test_the_cold_first_build_and_the_setup_are_added_once(tmp_path, monkeypatch, capsys):
    """A run's build is cold (the first touch of its memory) and pays a fixed setup the phase
    timings leave out: the estimate builds the first prefix cold then warm and adds both."""
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    real, sizes = estimate.build_once, []

    def cold_then_warm(cfg, prepared, size):
        graph, timings = real(cfg, prepared, size)
        sizes.append(size)
        cold = 5.0 if len(sizes) == 1 else 0.0
        return graph, {**timings, "wall": timings["wall"] + cold + 2.0}  # 2 s setup each

    monkeypatch.setattr(estimate, "build_once", cold_then_warm)
    estimate.main(["debug=tiny", "progress=false", "--samples", "16", "32"])
    out = capsys.readouterr().out
    assert sizes == [16, 16, 32]
    found = re.search(r"setup ([\d.]+) s and the first touch of the build's memory ([\d.]+) s", out)
    assert found is not None, out
    setup, touch = map(float, found.groups())
    assert setup == pytest.approx(2.0, abs=0.1) and touch >= 4.9
    build = float(re.search(r"predicted: build ([\d.]+) s", out).group(1))
    assert build >= setup + touch - 0.1


def test_linear_fit_extrapolates_and_never_undercuts_the_measurement():
    assert estimate.linear_fit(10, 1.5, 20, 2.0, 40) == pytest.approx(3.0)  # a + b n
    assert estimate.linear_fit(10, 2.0, 20, 1.0, 40) == 1.0  # noise: no negative slope
    assert estimate.linear_fit(10, 0.1, 20, 2.0, 40) == pytest.approx(4.0)  # at most proportional
    assert estimate.linear_fit(16, 1.0, 16, 1.0, 32) == pytest.approx(2.0)  # one size only


@pytest.fixture(scope="module")
def blob_graph():
    from conftest import trained_blob_classifier
    from interbasis import build_graph

    model, x, y = trained_blob_classifier()
    return model, x, y, build_graph(model, x, ["0", "2", "4", "output"], method="pca")


def _scripted_edge_ablation(monkeypatch, blob_graph, kept_score, delta, curve):
    """edge_ablation with each evaluation's score set by kept_score(n kept) (base score 1)."""
    from interbasis.basis import ablation

    model, x, y, graph = blob_graph
    monkeypatch.setattr(ablation, "edge_mask", lambda edges, n, to_constant: n)
    monkeypatch.setattr(ablation, "edge_ablated_forward", lambda folded, g, i, n, *a: n)
    monkeypatch.setattr(ablation, "evaluate", lambda forward, *a, **k:
                        kept_score(forward) if isinstance(forward, int) else 1.0)
    return ablation.edge_ablation(model, graph, 1, (x, y), delta=delta, curve=curve)


@pytest.mark.parametrize("curve", [False, True])
@pytest.mark.parametrize("answer", [0, 1, 2, 7, 13, 23, 24, 25, 47, "all", "none"])
def test_simulated_counts_are_those_edge_ablation_scores(monkeypatch, blob_graph, answer, curve):
    n_total = estimate.n_edges(blob_graph[3], 1)
    assert n_total >= 48
    answer = {"all": n_total, "none": n_total + 1}.get(answer, answer)
    result = _scripted_edge_ablation(monkeypatch, blob_graph, lambda n: float(n >= answer),
                                     0.5, curve)
    assert result.n_required == min(answer, n_total)
    assert list(result.evaluations) == sorted(estimate.edge_kept_counts(answer, n_total, curve))
    assert len(set(estimate.edge_kept_counts(answer, n_total, curve))) == len(result.evaluations)


@pytest.mark.parametrize("curve", [False, True])
@pytest.mark.parametrize("power", [0.5, 1.0, 3.0])
def test_simulated_counts_follow_a_smooth_monotone_score(monkeypatch, blob_graph, power, curve):
    n_total = estimate.n_edges(blob_graph[3], 1)

    def score(n):
        return 1.0 - (1.0 - n / n_total) ** power

    delta = 0.1
    answer = min(n for n in range(n_total + 1) if 1.0 - score(n) <= delta)
    result = _scripted_edge_ablation(monkeypatch, blob_graph, score, delta, curve)
    assert result.n_required == answer
    assert list(result.evaluations) == sorted(estimate.edge_kept_counts(answer, n_total, curve))


def test_the_curve_adds_the_halvings_below_the_answer():
    assert estimate.edge_kept_counts(5, 64, False) == [0, 64, 32, 16, 8, 4, 6, 5]
    assert estimate.edge_kept_counts(5, 64, True) == [0, 64, 32, 16, 8, 4, 6, 5, 2, 1]
    assert estimate.edge_kept_counts(65, 64, True) == [0, 64, 32, 16, 8, 4, 2, 1]  # none within


@pytest.mark.parametrize("answer", [0, 1, 3, 40, 100, 999, 1000, 1001])
def test_coarse_answer_is_within_its_factor_and_scores_few_counts(answer):
    scored = []

    def within(n):
        scored.append(n)
        return n >= answer

    found = estimate.coarse_answer(within, 1000, steps=3)
    if answer in (0, 1001):
        assert found == answer
    else:
        assert answer / 2 ** 0.5 <= found <= answer * 2 ** 0.5 + 1
    assert len(scored) <= 2 + 10 + 3  # both ends, the halvings of 1000, the steps


def test_answer_probe_keeps_whole_samples_or_the_first_positions_of_windows():
    x, y = torch.zeros(100, 3), torch.zeros(100)
    assert [len(t) for t in estimate.answer_probe((x, y), 0.125)] == [13, 13]
    tokens = torch.zeros(2, 64, dtype=torch.long)
    inputs, targets = estimate.answer_probe((tokens, tokens), 0.125)
    assert inputs.shape == targets.shape == (1, 16)
    inputs, _ = estimate.answer_probe((tokens[:1], tokens[:1]), 0.25)
    assert inputs.shape == (1, 16)
    inputs, _ = estimate.answer_probe((tokens, tokens), 1.0)
    assert inputs.shape == (2, 64)


def test_a_prefix_build_takes_the_same_share_of_the_gram_set(monkeypatch):
    """The LM presets' means and Grams come from a separate, larger set (data.gram_samples):
    a prefix build must cut it in the same proportion, or the estimate would time the
    statistics of the basis prefix alone."""
    from types import SimpleNamespace

    from interbasis import profiling
    from interbasis.training import family

    seen = {}

    class FakeGraph:
        settings = {"timings": {"statistics": 0.0, "basis": 0.0, "edges": 0.0}}

    def fake_build(model, inputs, node_layers, gram_inputs=None, **settings):
        seen.update(inputs=len(inputs), gram=None if gram_inputs is None else len(gram_inputs),
                    checkpoint=settings.get("checkpoint"))
        return FakeGraph()

    monkeypatch.setattr(profiling, "build_graph", fake_build)
    monkeypatch.setattr(family, "graph_settings", lambda cfg: {})
    cfg = SimpleNamespace(model=SimpleNamespace(node_layers=["a", "b"]))
    prepared = SimpleNamespace(model=None, basis_inputs=torch.zeros(500, 3),
                               gram_inputs=torch.zeros(50_000, 3))
    profiling.build_once(cfg, prepared, 8)
    assert seen["inputs"] == 8 and seen["gram"] == 800 and seen["checkpoint"]
    profiling.build_once(cfg, prepared)
    assert seen["inputs"] == 500 and seen["gram"] == 50_000
    profiling.build_once(cfg, SimpleNamespace(model=None, basis_inputs=torch.zeros(500, 3),
                                              gram_inputs=None), 8)
    assert seen["gram"] is None
