"""The family seam: one registry, families that never import the pipeline, ``basis`` features
and the method table, and a run path that writes only at the end."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from interbasis import config, families, pipeline
from interbasis.basis import (
    BASES,
    METHODS,
    build_graph,
    features,
    features_by_layer,
    layer_basis,
    needs_jacobian,
)
from interbasis.basis.bases import lib_basis, pca_basis
from interbasis.basis.sections import capture
from interbasis.results import RunDirectory
from interbasis.tracking import Tracker
from test_config import composed

SRC = Path(__file__).resolve().parents[1] / "src" / "interbasis"


def test_every_family_module_is_registered_under_its_name_with_its_schema():
    modules = {path.stem for path in (SRC / "training").glob("*.py")
               if "\nFAMILY_SPEC = " in path.read_text()}
    assert modules == set(families.FAMILIES) == set(config.schemas())
    for name, family in families.FAMILIES.items():
        assert family.name == name and callable(family.prepare)
        assert issubclass(family.schema, config.RunConfig)
        # the schema's model.family names the family (model=<other family's> is an error)
        assert config.section_schema(name, "model").model_fields["family"].annotation.__args__ \
            == (name,)
    with pytest.raises(config.ConfigError, match="no such family; registered: hf_lm, modadd"):
        families.family("mlp")


def test_a_family_prepares_only_its_own_schema():
    cfg = config.validate(composed(["family=poly_toy", "debug=tiny"]))
    with pytest.raises(config.ConfigError, match=r"^config error: the modadd family runs a "
                       r"ModAddRunConfig, not a PolyToyRunConfig"):
        pipeline.prepare(cfg, families.family("modadd"))


def test_family_modules_never_import_the_pipeline():
    for path in (SRC / "training").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from interbasis(\.pipeline| import pipeline)|import "
                             r"interbasis\.pipeline)", text, re.M), path.name


def test_nothing_outside_basis_uses_its_private_helpers():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "basis":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "interbasis.basis")):
                offenders += [f"{path.name}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_")]
    assert offenders == []


def test_relu_layers_are_family_properties():
    from interbasis.models.vision import make_mlp

    assert families.family("vision").relu_layers(make_mlp(6, [5, 4], 3, seed=0)) == ["2", "4"]
    assert families.family("modadd").relu_layers(nn.Identity()) == ["blocks.0.mlp.hook_post"]
    assert families.family("tiny_gpt").relu_layers(nn.Identity()) == []


def mlp_graph(method: str = "lib"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    inputs = torch.randn(64, 5, dtype=torch.float64)
    return model, inputs, build_graph(model, inputs, ["0", "2", "output"], method=method,
                                      progress=False)


def test_features_are_the_folded_activations_times_C_in_any_batching():
    from interbasis.basis.fold import frozen_folded_copy

    model, inputs, graph = mlp_graph()
    folded = frozen_folded_copy(model, torch.float64)
    expected = capture(folded, inputs, ["2"])["2"] @ graph.layer("2").C
    torch.testing.assert_close(features(model, graph, "2", inputs), expected, rtol=0, atol=0)
    batched = features_by_layer(model, graph, ["0", "2"], inputs, batch_size=10)
    torch.testing.assert_close(batched["2"], expected, rtol=1e-12, atol=1e-12)
    assert batched["0"].shape == (64, graph.layer("0").rank)


def test_the_method_table_covers_every_method_and_falls_back_to_pca_at_the_last_layer():
    assert set(BASES) == set(METHODS)
    assert needs_jacobian("lib") and needs_jacobian("ngf") and not needs_jacobian("pca")
    torch.manual_seed(1)
    x = torch.cat([torch.randn(50, 4, dtype=torch.float64), torch.ones(50, 1,
                                                                     dtype=torch.float64)], 1)
    mean = x.mean(0)
    gram = ((x - torch.cat([mean[:-1], torch.zeros(1, dtype=torch.float64)])).T
            @ (x - torch.cat([mean[:-1], torch.zeros(1, dtype=torch.float64)]))) / 50
    M = torch.eye(5, dtype=torch.float64)
    last = layer_basis("lib", gram, mean, None, True, 1e-15, last=True)
    torch.testing.assert_close(last.C, pca_basis(gram, mean, True, 1e-15).C)
    torch.testing.assert_close(layer_basis("ngf", gram, mean, M, True, 1e-15).C,
                               lib_basis(gram, mean, M, True, 1e-15).C)


def test_a_run_that_fails_after_training_writes_nothing(tmp_path, monkeypatch):
    """The toy's training table is computed before the basis, but written only at the end."""
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    cfg = config.validate(composed([
        "family=poly_toy", "debug=tiny", "model.m=16", "progress=false"]))
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.path.mkdir()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("interbasis.basis.build_graph", broken)  # interbasis.ranks.build calls it
    with pytest.raises(RuntimeError, match="boom"):
        pipeline.run(cfg, run_dir, Tracker())
    assert list(run_dir.path.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    summary = pipeline.run(cfg, run_dir, Tracker())  # the cached toy: no retraining
    assert summary["train/steps_trained_now"] == 0
    written = {path.name for path in run_dir.path.iterdir()}
    assert {"toy_training.csv", "toy_features.csv", "curves.csv", "graph_lib.pt"} <= written


def test_snapshot_measures_are_their_own_stage_logged_by_step(tmp_path, monkeypatch):
    """modadd with train.snapshot_every: the over-training table is written once and logged to
    the tracker row by row at its steps, before the run's own numbers."""
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    cfg = config.validate(composed(["debug=tiny", "train.snapshot_every=25", "progress=false",
                                    "ablation.edges=false"]))
    logged: list[tuple[dict, int | None]] = []

    class Recording(Tracker):
        def log_metrics(self, metrics, step=None):
            logged.append((dict(metrics), step))

    run_dir = RunDirectory(tmp_path / "run")
    run_dir.path.mkdir()
    summary = pipeline.run(cfg, run_dir, Recording())
    table = run_dir.read_table("degeneracy_over_training")
    assert list(table["step"]) == [0, 25, 50]
    assert [step for _, step in logged] == [0, 25, 50, None]
    assert "degeneracy_over_training/rank/gram/blocks.0.hook_resid_pre" in logged[0][0]
    # the last snapshot is the run's own model: its ranks are the run's
    assert (table["rank/gram/blocks.0.hook_resid_mid"].iloc[-1]
            == summary["rank/gram/blocks.0.hook_resid_mid"])
