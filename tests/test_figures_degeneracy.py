"""Figures 8 and 9 from synthetic stores: the fitted slope, and what each says when data lacks."""

import numpy as np
import pandas as pd
import pytest

from figure_store import synthetic_store, write_over_training_run, write_run, write_toy_runs
from interbasis.figures import fig08_degeneracy, fig09_polysemanticity
from interbasis.figures.data import MissingResults


def test_the_loglog_fit_recovers_a_known_slope_and_its_error_shrinks_with_less_noise():
    m = np.repeat([256, 512, 1024, 2048, 4096], 4)
    rng = np.random.default_rng(0)
    exact = 3000 * m ** -0.8
    slope, se, _ = fig09_polysemanticity.loglog_fit(m, exact)
    assert slope == pytest.approx(-0.8) and se < 1e-9
    noisy = exact * np.exp(rng.normal(0, 0.2, len(m)))
    slope, se, _ = fig09_polysemanticity.loglog_fit(m, noisy)
    assert abs(slope + 0.8) < 3 * se and 0 < se < 0.1
    with_zero = noisy.copy()
    with_zero[0] = 0  # a count of 0 cannot enter a log fit and must not break it
    assert np.isfinite(fig09_polysemanticity.loglog_fit(m, with_zero)[0])


def test_figure_9_fits_the_stored_counts(tmp_path):
    results = tmp_path / "results"
    write_toy_runs(results, ms=(256, 512, 1024, 2048), seeds=(0, 1))
    paths = fig09_polysemanticity.make(results, tmp_path / "out")
    assert {path.suffix for path in paths} == {".png", ".pdf", ".csv"}
    fit = pd.read_csv(tmp_path / "out" / "fig09_polysemanticity.csv").iloc[0]
    assert fit["n"] == 256 and fit["instances"] == 8 and fit["m_values"] == 4
    assert fit["slope"] == pytest.approx(-1.0, abs=0.02)  # counts are n^2/(4m) x seed factor


def test_figure_9_without_toy_runs_names_the_sweep(tmp_path):
    synthetic_store(tmp_path / "results", 1, experiment="other")
    with pytest.raises(MissingResults, match="sweep=paper_poly"):
        fig09_polysemanticity.make(tmp_path / "results", tmp_path / "out")


def test_figure_8_needs_ranks_or_a_training_table_and_uses_what_there_is(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(MissingResults, match="experiment=modadd_degeneracy"):
        fig08_degeneracy.make(tmp_path / "empty", tmp_path / "out")
    results = synthetic_store(tmp_path / "results", 1, experiment="other")
    assert fig08_degeneracy.over_training(results) is None
    assert len(fig08_degeneracy.make(results, tmp_path / "out")) == 2  # ranks only
    write_over_training_run(results)
    path, table = fig08_degeneracy.over_training(results)
    assert path.endswith("modadd_degeneracy/method=lib,seed=0") and len(table) == 5
    experiments = [name for name, _, _ in fig08_degeneracy.lib_ranks(results)]
    assert experiments == ["modadd_degeneracy", "other"]


def test_figure_8_counts_every_rank_at_one_relative_threshold(tmp_path):
    """Gram D, M' and LIB Lambda are each counted above REL x their own largest eigenvalue, so a
    LIB count is never one threshold and a Jacobian count another; the logits get no LIB count."""
    import torch

    from interbasis.basis.types import Graph, NodeLayer
    from interbasis.results import RunDirectory

    def layer(name, gram, lam, jac):
        d = len(gram)
        return NodeLayer(name=name, C=torch.eye(d, dtype=torch.float64)[:, :len(lam)],
                         C_pinv=torch.eye(d, dtype=torch.float64)[:len(lam)],
                         eigenvalues=torch.tensor(lam), mean=torch.zeros(d, dtype=torch.float64),
                         gram_eigenvalues=torch.tensor(gram),
                         jacobian_eigenvalues=None if jac is None else torch.tensor(jac))

    rel = fig08_degeneracy.REL
    graph = Graph(layers=[layer("a", [1.0, 0.5, rel / 2, 0.0], [2.0, rel * 4, rel / 4],
                                [3.0, -rel * 3 * 2, 1e-20, 0.0]),
                          layer("output", [1.0, 1e-3, 1e-9], [1.0, 1.0, 1.0], None)],
                  edges=None, method="lib")
    run = RunDirectory(tmp_path / "run")
    run.write_graph(graph, "lib")
    ranks = fig08_degeneracy.graph_ranks(str(run.path))
    assert ranks == {"rank/gram/a": 2, "rank/jacobian/a": 2, "rank/basis/a": 2,
                     "rank/gram/output": 2}


def test_figure_8_draws_the_llc_rows_when_runs_stored_one(tmp_path):
    from interbasis.results import RunDirectory

    results = tmp_path / "results"
    write_over_training_run(results)
    run_dir = RunDirectory(results / "runs" / "modadd_degeneracy" / "method=lib,seed=0")
    table = run_dir.read_table("degeneracy_over_training")
    table["degeneracy/llc"] = [-2.0, 30.0, 60.0, np.nan, 40.0]  # a snapshot subset: one gap
    table["degeneracy/llc_std"] = 1.0
    table.to_csv(run_dir.path / "degeneracy_over_training.csv", index=False)
    for seed, llc in ((0, 50.0), (1, 70.0)):
        write_run(results, "modadd_paper", "lib", seed)
        paper = RunDirectory(results / "runs" / "modadd_paper" / f"method=lib,seed={seed}")
        summary = paper.read_summary()
        (paper.path / "summary.json").unlink()
        paper.write_summary({**summary, "degeneracy/llc": llc, "degeneracy/llc_std": 2.0,
                             "model/n_params": 1000})
    assert list(fig08_degeneracy.final_llcs(results)["degeneracy/llc"]) == [50.0, 70.0]
    paths = fig08_degeneracy.make(results, tmp_path / "out")
    assert [path.suffix for path in paths] == [".png", ".pdf"]
