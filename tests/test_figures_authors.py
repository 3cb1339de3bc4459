"""Figures 1-3 with the LIB authors' models and numbers: our pipeline on our models, on theirs,
and their published numbers (from the results store only), plus NGF where there are runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from figure_store import write_run
from interbasis.figures import fig01_node_ablation, fig02_edges_required, fig03_lib_graph, style
from interbasis.results.__main__ import main as results_main


@pytest.fixture
def store(tmp_path, reference):
    results = tmp_path / "results"
    for seed in (0, 1):
        for method in ("lib", "pca"):
            write_run(results, "modadd_paper", method, seed)
            write_run(results, "modadd_authors", method, seed)
    write_run(results, "modadd_authors", "ngf", 0)
    assert results_main(["authors-import", "--reference-dir", str(reference),
                         "--results", str(results)]) == 0
    return results


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the modules draw, instead of files."""
    drawn = []
    monkeypatch.setattr(style, "save", lambda fig, out, stem: drawn.append((stem, fig)) or [])
    return drawn


def test_fig2_has_our_models_their_models_and_their_published_numbers(store):
    panels, groups = fig02_edges_required.groups(store, "modadd_paper")
    assert list(groups) == ["ours", "authors_ours", "authors"]
    assert panels[-1] == "total"
    published = groups["authors"]
    lib0 = published[(published.method == "lib") & (published.seed == 0)].set_index("panel")
    # the fixture's authors' numbers: 80, 60 and 600 edges, total 740
    assert lib0.loc["blocks.0.hook_resid_pre->blocks.0.hook_resid_mid", "edges"] == 80
    assert lib0.loc["total", "edges"] == 740
    assert set(groups["authors_ours"]["method"]) == {"lib", "pca", "ngf"}


def test_fig2_without_the_authors_results_draws_ours_and_says_so(tmp_path, figures):
    results = tmp_path / "results"
    for method in ("lib", "pca"):
        write_run(results, "modadd_paper", method, 0)
    _, groups = fig02_edges_required.groups(results, "modadd_paper")
    assert list(groups) == ["ours"]
    fig02_edges_required.make(results, tmp_path / "out")
    assert ("not in the results store: authors' models, our pipeline; authors' models, their "
            "pipeline (published)") in figures[0][1]._suptitle.get_text()


def test_fig1_has_a_row_for_their_models_and_their_published_curves(store, figures, tmp_path):
    fig01_node_ablation.make(store, tmp_path / "out")
    (stem, fig), = figures
    assert stem == "fig01_node_ablation" and len(fig.axes) == 6  # 2 rows x 3 layers
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].endswith("our models") and titles[3].endswith("the authors' models")
    labels = [text.get_text() for text in fig.axes[3].get_legend().get_texts()]
    assert "LIB, authors' published (mean of 2)" in labels
    assert any(label.startswith("NGF (seed 0)") for label in labels)


def test_fig3_draws_lib_and_pca_and_ngf_of_the_authors_models(store, figures, tmp_path):
    fig03_lib_graph.make(store, tmp_path / "out")
    stems = {stem: fig for stem, fig in figures}
    assert set(stems) == {"fig03_lib_graph", "fig03_lib_graph_appendix"}
    main_titles = [ax.get_title() for ax in stems["fig03_lib_graph"].axes]
    assert main_titles == ["LIB", "PCA"]
    assert [ax.get_title() for ax in stems["fig03_lib_graph_appendix"].axes] == \
        ["LIB", "PCA", "NGF"]
    title = stems["fig03_lib_graph"]._suptitle.get_text()
    assert "the LIB authors' models (modadd_authors), seed 0" in title  # no seed 3: the first
    assert "resolution 0.5" in title and "clusters of one hidden" in title
    appendix = stems["fig03_lib_graph_appendix"]._suptitle.get_text()
    assert "resolution 1" in appendix and "top 25" in appendix


def test_fig3_cluster_colours_are_not_method_colours():
    methods = {colour.lower() for colour in style.METHOD_COLORS.values()}
    assert not methods & {colour.lower() for colour in style.CLUSTER_COLORS}


def test_fig3_hides_features_in_clusters_of_one(store):
    """As many nodes are drawn as the top 6 per layer hold features of clusters of two or more."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    from interbasis.figures import data

    path = store / "runs/modadd_authors/method=lib,seed=0"
    record = json.loads((path / "modularity.json").read_text())
    for partition in record["partitions"]:  # make two features clusters of their own
        first = partition["membership"]["blocks.0.hook_resid_pre"]
        first[1], first[2] = 1001, 1002
    (path / "modularity.json").write_text(json.dumps(record))
    graph, part = data.graph(path, "lib"), data.partition(path, "modadd_authors", 1.0)
    sizes = pd.Series([c for m in part["membership"].values() for c in m if c >= 0]).value_counts()
    expected = {False: 0, True: 0}
    for layer in graph.layers[:3]:
        for c in fig03_lib_graph.selected_features(layer, 6):
            expected[False] += 1
            expected[True] += int(sizes[part["membership"][layer.name][c]] > 1)
    assert expected[True] < expected[False]  # the fixture has clusters of one to hide
    for hide in (False, True):
        ax = plt.subplots()[1]
        fig03_lib_graph.draw_graph(ax, pd.Series({"method": "lib", "path": str(path)}),
                                   "modadd_authors", 1.0, 6, hide_singletons=hide)
        nodes = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(nodes) == expected[hide]
    plt.close("all")
