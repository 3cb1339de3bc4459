"""The results browser on a tiny synthetic store: files, graph JSON schema, labels, links."""

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from interbasis.basis.types import load_graph
from interbasis.site import build as site_build
from interbasis.site import build_site
from interbasis.site.__main__ import main
from interbasis.site.collect import compare_groups, load_store, sweep_axes
from interbasis.site.graph_json import EDGE_WEIGHT_SHARE, selected_edges
from site_store import CLASSES, broken_links, write_run, write_site_store

GRAPHS = ["graphs/lm_toy/method=lib,seed=0.json", "graphs/modadd_toy/method=lib,seed=0.json",
          "graphs/modadd_toy/method=lib,seed=1.json",
          "graphs/modadd_toy/method=neuron,seed=0.json",
          "graphs/modadd_toy/method=pca,seed=0.json", "graphs/vision_toy/method=lib,seed=0.json"]
DOC = Path(__file__).resolve().parents[1] / "docs" / "graph_schema.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = write_site_store(tmp_path_factory.mktemp("store"))
    report = build_site(root)
    assert report.out == root / "site"
    return report.out


def schema() -> dict:
    text = DOC.read_text(encoding="utf-8")
    return json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))


def test_site_has_every_page_and_graph(site):
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html"))
    graph_pages = [name.replace(".json", ".html") for name in GRAPHS]
    assert pages == sorted([
        "compare/modadd_toy/seed=0.html", "compare/vision_toy/seed=0.html", "index.html",
        "runs/lm_toy/method=lib,seed=0.html",
        "runs/modadd_toy/method=lib,seed=0.html", "runs/modadd_toy/method=lib,seed=1.html",
        "runs/modadd_toy/method=neuron,seed=0.html", "runs/modadd_toy/method=pca,seed=0.html",
        "runs/vision_toy/method=lib,seed=0.html", "runs/vision_toy/method=pca,seed=0.html",
        *graph_pages])
    graphs = sorted(str(p.relative_to(site)) for p in (site / "graphs").rglob("*.json"))
    assert graphs == GRAPHS
    bundled = (site / "plotly.min.js").read_text(encoding="utf-8")
    assert len(bundled) > 1_000_000 and "plotly" in bundled[:2000].lower()
    assert not list(site.parent.glob(".site.*"))  # no staging folder left behind


def test_no_page_needs_the_network(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r'(src|href)="(https?:)?//', text), page
        assert "plotly.min.js" in text


def test_every_relative_link_resolves(site):
    assert broken_links(site) == []


def test_the_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "a.html").write_text(
        '<a href="b.html">b</a><a href="missing.html">m</a><a href="b.html#x">x</a>'
        '<a href="#nope">n</a><script src="https://cdn.example/plotly.js"></script>')
    (tmp_path / "b.html").write_text('<p id="y">b</p>')
    assert broken_links(tmp_path) == [
        "a.html: missing.html", "a.html: b.html#x (no such id)", "a.html: #nope (no such id)",
        "a.html: external https://cdn.example/plotly.js"]


def test_index_lists_runs_sweep_axes_and_the_failed_run(site):
    text = (site / "index.html").read_text(encoding="utf-8")
    assert text.count('class="sortable"') == 3  # one run table per experiment
    assert "<code>method.name</code>: lib, neuron, pca" in text
    assert "<code>seed</code>: 0, 1" in text
    assert "paths.root" not in text  # where a run was written is not a sweep axis
    assert 'href="runs/modadd_toy/method=lib,seed=0.html"' in text
    assert "method=pca,seed=1" in text and "out of memory" in text
    assert 'href="runs/modadd_toy/method=pca,seed=1.html"' not in text  # failed: no page
    assert 'href="compare/modadd_toy/seed=0.html"' in text
    assert 'href="graphs/modadd_toy/method=lib,seed=0.html"' in text
    assert 'href="graphs/vision_toy/method=pca,seed=0.html"' not in text  # no graph stored


def test_graph_json_follows_the_documented_schema(site):
    validator = jsonschema.Draft202012Validator(schema())
    for path in (site / "graphs").rglob("*.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        errors = [e.message for e in validator.iter_errors(record)]
        assert errors == [], (path, errors[:3])
        ids = [node["id"] for node in record["nodes"]]
        assert len(ids) == len(set(ids)) == sum(layer["rank"] for layer in record["layers"])
        layer_of = {node["id"]: node["layer"] for node in record["nodes"]}
        for transition in record["transitions"]:
            edges = [e for e in record["edges"] if e["transition"] == transition["name"]]
            assert len(edges) == transition["n_exported"]
            assert {layer_of[e["source"]] for e in edges} == {transition["source_layer"]}
            assert {layer_of[e["target"]] for e in edges} == {transition["target_layer"]}
            assert transition["weight_share_exported"] >= EDGE_WEIGHT_SHARE - 1e-9


def test_every_schema_field_is_described_in_the_doc():
    text = DOC.read_text(encoding="utf-8").split("## JSON Schema")[0]
    properties = schema()["properties"]
    names = set(properties)
    for key in ("edge_selection", "layers", "transitions", "nodes", "edges"):
        inner = properties[key]
        names.update((inner.get("items") or inner).get("properties", {}))
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert missing == []


def test_graph_json_matches_the_stored_graph_labels_and_clusters(site):
    run = site.parent / "runs" / "modadd_toy" / "method=lib,seed=0"
    record = json.loads((site / "graphs/modadd_toy/method=lib,seed=0.json").read_text())
    graph = load_graph(run / "graph_lib.pt")
    modularity = json.loads((run / "modularity.json").read_text())
    partition = next(p for p in modularity["partitions"] if p["resolution"] == 0.5)
    fourier = pd.read_csv(run / "fourier.csv").set_index(["layer", "feature"])
    assert record["cluster_resolution"] == 0.5 and record["label_source"] == "fourier.csv"
    for node in record["nodes"]:
        layer = graph.layer(node["layer"])
        assert node["importance"] == pytest.approx(float(layer.eigenvalues[node["feature"]]))
        assert node["cluster"] == partition["membership"][node["layer"]][node["feature"]]
        if node["constant"]:
            assert node["feature"] == 0 and node["label"] == "constant"
        else:
            assert node["label"].startswith(fourier.loc[(node["layer"], node["feature"]), "term"])
    # edges run from the earlier layer (columns of E) to the later one (rows)
    name, first = graph.transition_names[0], graph.edges[0].numpy()
    row, column = np.unravel_index(first.argmax(), first.shape)
    heaviest = max((e for e in record["edges"] if e["transition"] == name),
                   key=lambda e: e["weight"])
    assert heaviest == {"source": f"{graph.layers[0].name}:{column}",
                        "target": f"{graph.layers[1].name}:{row}", "transition": name,
                        "weight": pytest.approx(first.max())}


def test_selected_edges_hold_the_share_heaviest_first():
    E = np.array([[0.0, 5.0, 1.0], [3.0, 0.0, 1.0]])
    kept = selected_edges(E, share=0.8)
    assert kept == [(0, 1, 5.0), (1, 0, 3.0)]  # 8 of 10 reached with two edges
    assert [w for *_, w in selected_edges(E, share=1.0)] == [5.0, 3.0, 1.0, 1.0]  # no zeros
    assert len(selected_edges(E, share=1.0, cap=2)) == 2
    assert selected_edges(np.zeros((2, 2))) == []


def test_vision_labels_name_the_class_and_the_logits(site):
    record = json.loads((site / "graphs/vision_toy/method=lib,seed=0.json").read_text())
    labels = {node["id"]: node["label"] for node in record["nodes"]}
    # the synthetic class means make feature f stand out on class f % 4
    assert labels["2:5"].startswith(f"{CLASSES[1]} (clothing) high, group eta2")
    assert [labels[f"output:{j}"] for j in range(4)] == [f"logit {c}" for c in CLASSES]
    assert labels["0:3"] is None  # pixel-layer features have no class table
    assert any("has no labels for layer(s) 0" in n for n in record["label_notes"])


def test_pages_say_what_is_not_labelled_or_stored(site):
    lm = (site / "runs/lm_toy/method=lib,seed=0.html").read_text(encoding="utf-8")
    assert "no top tokens or position shares are stored" in lm
    pca = (site / "runs/vision_toy/method=pca,seed=0.html").read_text(encoding="utf-8")
    assert "no graph file (graph_*.pt) is stored" in pca
    compare = (site / "compare/vision_toy/seed=0.html").read_text(encoding="utf-8")
    assert "PCA: no graph file stored for this run" in compare


def test_run_page_has_metrics_curves_graph_and_feature_rows(site):
    text = (site / "runs/modadd_toy/method=lib,seed=0.html").read_text(encoding="utf-8")
    for div in ("node-curves", "edge-curves", "spectra", "graph"):
        assert f'<div class="plot" id="{div}">' in text
    assert "ablation/edges_required@0.001" in text and "sparsity/lambda_99" in text
    assert 'id="f-blocks.0.hook_resid_mid-3"' in text  # a feature row a graph node links to
    assert '"customdata":["#f-blocks.0.hook_resid_pre-' in text.replace(" ", "")


def test_comparison_puts_every_method_side_by_side(site):
    text = (site / "compare/modadd_toy/seed=0.html").read_text(encoding="utf-8")
    for method in ("lib", "pca", "neuron"):
        assert f'id="graph-{method}"' in text
        assert f'href="../../runs/modadd_toy/method={method},seed=0.html"' in text
    assert "Not in the store for this model and seed: NGF, random rotation." in text
    assert "<th" in text and "LIB/PCA" in text


def test_store_reading_groups_and_axes(site):
    runs = load_store(site.parent)
    modadd = [run for run in runs if run.experiment == "modadd_toy"]
    assert {run.status for run in modadd} == {"complete", "failed"}
    assert set(sweep_axes(modadd)) == {"method.name", "seed"}
    groups = compare_groups(modadd)
    assert list(groups) == ["seed=0"]
    assert [run.method for run in groups["seed=0"]] == ["lib", "pca", "neuron"]


def test_rebuild_replaces_the_site_and_a_failed_build_keeps_the_old_one(tmp_path, monkeypatch):
    root = tmp_path
    write_run(root, "lm_toy", "lib", 0, "tiny_gpt", ["blocks.0.hook_resid_pre", "output"])
    out = build_site(root).out
    (out / "stale.html").write_text("old", encoding="utf-8")
    build_site(root)
    assert not (out / "stale.html").exists()

    def boom(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(site_build, "_write", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_site(root)
    assert (out / "index.html").is_file()
    assert not list(tmp_path.glob(".site.*"))


def test_cli_reports_pages_and_a_missing_store(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "nowhere")]) == 1
    assert "no results store at" in capsys.readouterr().err
    root = tmp_path / "store"
    write_run(root, "lm_toy", "lib", 0, "tiny_gpt", ["blocks.0.hook_resid_pre", "output"])
    assert main(["--results", str(root), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "3 pages and 1 graph files" in printed and (tmp_path / "out" / "index.html").is_file()
    assert "note: lm_toy/method=lib,seed=0: no top tokens" in printed
