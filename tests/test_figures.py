"""Every figure from a tiny synthetic results store; skips say what is missing and the fix."""

import importlib
import json

import numpy as np
import pandas as pd
import pytest

from figure_store import (
    LAYERS,
    synthetic_store,
    write_run,
)
from interbasis.figures import fig03_lib_graph, fig06_lm_edges, fig10_cross_architecture
from interbasis.figures.__main__ import main
from interbasis.figures.data import MissingResults
from interbasis.figures.registry import FIGURES
from interbasis.results import load_runs

DRAWN = [spec for spec in FIGURES if spec.module is not None]


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_every_figure_is_drawn_from_a_synthetic_store(tmp_path, capsys, n_seeds):
    results = synthetic_store(tmp_path / "results", n_seeds)
    synthetic_store(results, n_seeds, experiment="fashion_mlp", model="vision")
    synthetic_store(results, n_seeds, experiment="tiny_gpt", model="tiny_gpt")  # figure 6
    out = tmp_path / "figures"
    assert main(["--results", str(results), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for spec in DRAWN:
        stem = importlib.import_module(f"interbasis.figures.{spec.module}").STEM
        for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
            # a figure drawn once per experiment (figure 5) is <stem>_<experiment>
            paths = sorted(out.glob(f"{stem}{suffix}")) or sorted(out.glob(f"{stem}_*{suffix}"))
            assert paths and all(path.read_bytes()[:4] == magic for path in paths), stem
        assert f"figure {spec.number}: " in printed
    assert f"{len(DRAWN)} figures written" in printed and "0 failed" in printed


def test_the_cross_architecture_table_holds_per_seed_ratios_of_every_model(tmp_path):
    results = synthetic_store(tmp_path / "results", 2)
    synthetic_store(results, 1, experiment="mlp_paper", model="mlp")
    paths = fig10_cross_architecture.make(results, tmp_path / "out")
    assert {path.suffix for path in paths} == {".png", ".pdf", ".csv", ".md"}
    table = pd.read_csv(tmp_path / "out" / "fig10_cross_architecture.csv")
    assert list(dict.fromkeys(table["experiment"])) == ["modadd_paper", "mlp_paper"]
    assert set(table["baseline"]) == {"pca"}  # no neuron runs in the store
    runs = load_runs(results / "runs")
    runs = runs[runs["experiment"] == "modadd_paper"].set_index(["method", "seed"])
    total = table[(table["experiment"] == "modadd_paper") & (table["row"] == "total")
                  & (table["metric"] == "edges_required")].set_index("seed")
    assert sorted(total.index) == [0, 1]  # one ratio per seed, paired by seed
    for seed in (0, 1):
        lib, pca = (runs.loc[(m, seed), "ablation/edges_required@0.001/total"]
                    for m in ("lib", "pca"))
        assert total.loc[seed, "log2_ratio"] == pytest.approx(np.log2(lib / pca), rel=1e-5)
    layer = LAYERS[1]
    k = table[(table["experiment"] == "modadd_paper") & (table["row"] == layer)
              & (table["metric"] == "features_required")].set_index("seed")
    assert k.loc[0, "value_method"] == runs.loc[("lib", 0), f"ablation/k_required@0.001/{layer}"]
    fraction = table[(table["metric"] == "edges_fraction") & (table["row"] == "total")]
    assert ((fraction["value_method"] > 0) & (fraction["value_method"] <= 1)).all()
    markdown = (tmp_path / "out" / "fig10_cross_architecture.md").read_text()
    assert "| modadd_paper | pca | total | edges required (tolerance) | 2 |" in markdown
    assert "| mlp_paper | pca |" in markdown


def test_cross_architecture_draws_the_random_baseline_and_the_edge_area(tmp_path):
    results = tmp_path / "results"
    for seed in (0, 1):  # LIB and random runs with every halving scored; PCA's without
        for method in ("lib", "pca", "random"):
            write_run(results, "modadd_paper", method, seed, halvings=method != "pca")
    fig10_cross_architecture.make(results, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "fig10_cross_architecture.csv")
    assert set(table["baseline"]) == {"pca", "random"}
    area = table[table["metric"] == "edge_area"]
    assert set(area["baseline"]) == {"random"}  # PCA's runs lack the halvings: no pair
    runs = load_runs(results / "runs").set_index(["method", "seed"])
    total = area[area["row"] == "total"].set_index("seed")
    for seed in (0, 1):
        lib, rand = (runs.loc[(m, seed), "ablation/edge_area/total"] for m in ("lib", "random"))
        assert 0 < lib < 1 and total.loc[seed, "log2_ratio"] == pytest.approx(
            np.log2(lib / rand), rel=1e-5)
    markdown = (tmp_path / "out" / "fig10_cross_architecture.md").read_text()
    assert "| modadd_paper | random | total | edge-ablation area / possible edges" in markdown


def test_cross_architecture_marks_censored_layers_and_missing_edges(tmp_path):
    """A layer whose k_required is above its basis rank (the tolerance was never reached, as
    SmolLM2's rank + 1 today) is 'both censored' with no ratio; a model without edge ablations
    has no edges-required rows."""
    results = synthetic_store(tmp_path / "results", 1, experiment="smollm2_135m", model="hf_lm")
    layer = LAYERS[0]
    for path in (results / "runs" / "smollm2_135m").glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary = {k: v for k, v in summary.items() if "edges_required" not in k}
        summary[f"ablation/k_required@0.001/{layer}"] = summary[f"rank/basis/{layer}"] + 1
        path.write_text(json.dumps(summary))
    for path in (results / "runs" / "smollm2_135m").glob("*/curves.csv"):
        curves = pd.read_csv(path)
        curves[curves["kind"] == "node"].to_csv(path, index=False)
    long, experiments = fig10_cross_architecture.long_table(results)
    ratios = fig10_cross_architecture.ratio_table(long)
    cell = ratios[(ratios["row"] == layer) & (ratios["metric"] == "features_required")]
    assert list(cell["status"]) == ["both censored"] and cell["log2_ratio"].isna().all()
    # without edge ablations a transition has only the weight-based edges_99
    assert set(ratios[ratios["block"] == "transition"]["metric"]) == {"edges_99"}
    assert experiments["smollm2_135m"]["k_delta"] == "0.001"
    fig10_cross_architecture.draw(long, ratios, experiments, tmp_path / "out")


def test_an_empty_store_skips_every_figure_with_one_line_naming_the_command(tmp_path, capsys):
    (tmp_path / "results" / "runs").mkdir(parents=True)
    out = tmp_path / "figures"
    assert main(["--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(FIGURES) + 1  # one per figure and the closing count
    for spec, line in zip(FIGURES, lines):
        assert line.startswith(f"figure {spec.number} (") and "skipped" in line
        assert "python -m interbasis.run" in line or spec.module is None
    assert not out.exists() or not any(out.iterdir())


def test_missing_analysis_files_name_the_backfill_command(tmp_path, capsys):
    results = synthetic_store(tmp_path / "results", 1)
    (results / "runs/modadd_paper/method=lib,seed=0/fourier.csv").unlink()
    assert main(["--results", str(results), "--out", str(tmp_path / "out"),
                 "--only", "3", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    for number, line in zip((3, 4), lines):
        assert line.startswith(f"figure {number} (") and "fourier.csv is missing" in line
        assert "python -m interbasis.analysis.backfill results/runs/modadd_paper" in line


def test_a_resolution_that_was_not_stored_says_how_to_add_it(tmp_path):
    results = synthetic_store(tmp_path / "results", 1)
    with pytest.raises(MissingResults, match=r"holds resolutions \[1.0, 0.5\], not 2.0; .*"
                       r"--force --resolutions 1 2.0"):
        fig03_lib_graph.make(results, tmp_path / "out", resolution=2.0)


def test_regenerating_unchanged_results_gives_identical_files(tmp_path):
    results = synthetic_store(tmp_path / "results", 1)
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["--results", str(results), "--out", str(out), "--only", "2"]) == 0
    for name in ("fig02_edges_required.png", "fig02_edges_required.pdf"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_bad_arguments_get_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--only", "11"])
    assert "unknown figure(s) [11]" in capsys.readouterr().err
    assert main(["--results", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.strip().startswith("no results store at")


def test_the_registry_lists_every_figure_of_the_spec():
    assert [spec.number for spec in FIGURES] == list(range(1, 11))
    for spec in DRAWN:
        module = importlib.import_module(f"interbasis.figures.{spec.module}")
        assert callable(module.make) and module.STEM.startswith(f"fig{spec.number:02d}_")


def test_lm_figure_panels_are_the_attention_and_mlp_sections(tmp_path):
    results = synthetic_store(tmp_path / "results", 2, experiment="tiny_gpt", model="tiny_gpt")
    runs = fig06_lm_edges.data.method_runs(results, "tiny_gpt")
    points = fig06_lm_edges.edge_points(runs)
    assert (points["increase"] == points["score"] - points["base_score"]).all()
    kinds = {t: fig06_lm_edges.section_kind(t) for t in points["layer"].unique()}
    assert kinds == {"blocks.0.hook_resid_pre->blocks.0.hook_resid_mid": "attention",
                     "blocks.0.hook_resid_mid->blocks.0.hook_resid_post": "MLP",
                     "blocks.0.hook_resid_post->output": None}
    paths = fig06_lm_edges.make(results, tmp_path / "out")  # with the LM graph (6b) beside it
    assert [p.name for p in paths] == ["fig06_lm_edges.png", "fig06_lm_edges.pdf",
                                       "fig06b_lm_graph.png", "fig06b_lm_graph.pdf"]
    with pytest.raises(MissingResults, match="experiment=tiny_gpt"):
        fig06_lm_edges.make(tmp_path / "empty", tmp_path / "out")


def test_cross_architecture_rows_use_each_experiments_own_tolerance(tmp_path):
    """A language model's summaries hold k_required@0.05 and edges_required@0.05 only: its rows
    use them (and say so) instead of the missing @0.001 columns."""
    results = synthetic_store(tmp_path / "results", 1)
    synthetic_store(results, 1, experiment="tiny_gpt", model="tiny_gpt")
    for path in (results / "runs" / "tiny_gpt").glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary = {key.replace("@0.001/", "@0.05/"): value for key, value in summary.items()}
        path.write_text(json.dumps(summary))
    long, experiments = fig10_cross_architecture.long_table(results)
    assert experiments["tiny_gpt"]["k_delta"] == "0.05"
    assert experiments["modadd_paper"]["k_delta"] == "0.001"
    ratios = fig10_cross_architecture.ratio_table(long)
    row = ratios[(ratios["experiment"] == "tiny_gpt") & (ratios["row"] == "total")
                 & (ratios["metric"] == "edges_required")].iloc[0]
    runs = load_runs(results / "runs")
    lm = runs[runs["experiment"] == "tiny_gpt"].set_index("method")
    edges = lm["ablation/edges_required@0.05/total"]
    assert row["log2_ratio"] == pytest.approx(np.log2(edges["lib"] / edges["pca"]), rel=1e-5)


def test_the_fourier_kde_integrates_to_one_inside_the_unit_interval():
    from interbasis.figures.fig04_fourier_purity import GRID, kde

    for values in ([0.0, 0.01, 0.02], [0.5] * 4, np.linspace(0, 1, 50)):
        density = kde(values)
        assert np.trapezoid(density, GRID) == pytest.approx(1.0, abs=0.01)
        assert (density >= 0).all()
    peak = GRID[np.argmax(kde([0.8, 0.82, 0.79]))]
    assert abs(peak - 0.8) < 0.03
    assert not kde([]).any()


def test_layer_names_follow_each_model_family():
    from interbasis.figures.style import layer_names, transition_names

    assert layer_names(["0", "2", "4"]) == {"0": "input", "2": "hidden 1", "4": "hidden 2"}
    assert transition_names(["0", "2", "4"])["4->output"] == "hidden 2 \u2192 logits"
    gpt = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre",
           "blocks.1.hook_resid_mid", "ln_final"]
    assert layer_names(gpt)["blocks.1.hook_resid_mid"] == "block 1 attn-MLP"
    sections = transition_names(gpt)
    assert sections["blocks.0.hook_resid_mid->blocks.1.hook_resid_pre"] == "block 0 MLP"
    assert sections["ln_final->output"] == "unembed"
    assert transition_names(LAYERS)[f"{LAYERS[0]}->{LAYERS[1]}"] == "attention"


def test_cross_architecture_compares_lib_with_neurons_where_neuron_runs_exist(tmp_path):
    results = synthetic_store(tmp_path / "results", 2, experiment="mlp_paper", model="mlp")
    for seed in (0, 1):
        write_run(results, "mlp_paper", "neuron", seed, "mlp")
    long, experiments = fig10_cross_architecture.long_table(results)
    ratios = fig10_cross_architecture.ratio_table(long)
    assert set(ratios["baseline"]) == {"pca", "neuron"}
    neuron = ratios[(ratios["baseline"] == "neuron") & (ratios["metric"] == "edges_required")
                    & (ratios["row"] == "total")].set_index("seed")
    runs = load_runs(results / "runs").set_index(["method", "seed"])
    lib, base = (runs.loc[(m, 1), "ablation/edges_required@0.001/total"] for m in ("lib", "neuron"))
    assert neuron.loc[1, "log2_ratio"] == pytest.approx(np.log2(lib / base), rel=1e-5)
    paths = fig10_cross_architecture.draw(long, ratios, experiments, tmp_path / "out")
    assert paths[0].read_bytes()[:4] == b"\x89PNG"
