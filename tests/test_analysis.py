"""Fourier purity, the stored Leiden partition, and the backfill of finished runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from hydra_runs import run_in_process
from interbasis.analysis.backfill import backfill_run, complete_runs
from interbasis.analysis.backfill import main as backfill_main
from interbasis.analysis.fourier import canonical_term, fourier_purity, term_label
from interbasis.results import RunDirectory

P = 7


def grid(fn) -> np.ndarray:
    """fn(a, b) on the P x P grid as a (P, P, 1, 1) array."""
    a, b = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    return fn(a, b)[:, :, None, None].astype(np.float64)


def wave(k_a: int, k_b: int, phase: float = 0.0):
    return lambda a, b: np.cos(2 * np.pi * (k_a * a + k_b * b) / P + phase)


@pytest.mark.parametrize(("k_a", "k_b", "label"), [
    (3, 0, "3a"), (0, 2, "2b"), (2, 2, "2(a+b)"), (1, -1, "1(a-b)"), (1, -2, "1a-2b"),
    (-3, 0, "3a"), (6, 0, "1a"),  # -3 and 6 = -1 (mod 7) are the conjugates of 3 and 1
])
def test_a_single_mode_is_pure_whatever_its_phase(k_a, k_b, label):
    for phase in (0.0, 0.7, -2.0):
        row = fourier_purity(grid(wave(k_a, k_b, phase))).iloc[0]
        assert row["purity"] == pytest.approx(1.0)
        assert row["term"] == label


def test_purity_is_the_top_terms_share_of_power():
    # amplitudes 2 and 1: powers 4 : 1, so the top term holds 0.8 of the power; a constant
    # offset adds nothing
    mixed = grid(lambda a, b: 2 * wave(3, 0)(a, b) + wave(0, 2, 0.3)(a, b) + 5.0)
    row = fourier_purity(mixed).iloc[0]
    assert row["purity"] == pytest.approx(0.8)
    assert (row["k_a"], row["k_b"]) == (3, 0)
    assert row["key_frequency"] == 3 and row["key_frequency_share"] == pytest.approx(0.8)


def test_positions_add_power_and_key_frequency_merges_a_and_b():
    # the same frequency read from a at position 0 and from b at position 1
    both = np.concatenate([grid(wave(2, 0)), grid(wave(0, 2))], axis=2)
    row = fourier_purity(both).iloc[0]
    assert row["purity"] == pytest.approx(0.5)
    assert row["key_frequency"] == 2 and row["key_frequency_share"] == pytest.approx(1.0)


def test_a_constant_feature_has_no_purity():
    row = fourier_purity(grid(lambda a, b: np.full(a.shape, 3.0))).iloc[0]
    assert math.isnan(row["purity"]) and row["term"] == "const"


def test_fourier_purity_rejects_a_bad_shape():
    with pytest.raises(ValueError, match="p, p, n_positions, n_features"):
        fourier_purity(np.zeros((P, P, 3)))


def test_canonical_term_and_labels():
    assert canonical_term(5, 4, 7) == (2, 3)  # -(5, 4) = (2, 3) mod 7
    assert canonical_term(0, 6, 7) == (0, 1)
    assert term_label(0, 0) == "const"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A debug=tiny LIB run, composed by Hydra and run in this process."""
    results = tmp_path_factory.mktemp("results")
    out = run_in_process("debug=tiny", "method=lib", results=results)
    assert out.returncode == 0, out.stderr[-2000:]
    return RunDirectory(results / "runs" / "debug" / "method=lib")


@pytest.mark.integration
def test_runs_store_the_partition_and_the_fourier_table(tiny_run):
    summary = tiny_run.read_summary()
    record = tiny_run.read_json("modularity")
    by_resolution = {part["resolution"]: part for part in record["partitions"]}
    assert set(by_resolution) == {1.0, 0.5}
    assert by_resolution[1.0]["q"] == pytest.approx(summary["modularity/q"], abs=1e-12,
                                                     nan_ok=True)
    for layer, clusters in by_resolution[0.5]["membership"].items():
        assert len(clusters) == summary[f"rank/basis/{layer}"]
    table = tiny_run.read_table("fourier")
    layers = list(dict.fromkeys(table["layer"]))
    assert layers == list(by_resolution[1.0]["membership"])
    for layer in layers:
        rows = table[table["layer"] == layer]
        assert len(rows) == summary[f"rank/basis/{layer}"]
        assert list(rows["feature"]) == list(range(len(rows)))
    real = table[~table["constant"]]
    assert ((real["purity"] > 0) & (real["purity"] <= 1 + 1e-9)).all()


@pytest.mark.integration
def test_backfill_rewrites_the_same_files_and_leaves_the_summary_alone(tiny_run, capsys):
    summary_text = (tiny_run.path / "summary.json").read_text()
    fourier = tiny_run.read_table("fourier")
    partition = tiny_run.read_json("modularity")
    for name in ("fourier.csv", "modularity.json"):
        (tiny_run.path / name).unlink()
    assert [run.path for run in complete_runs(tiny_run.path.parents[1])] == [tiny_run.path]
    assert sorted(backfill_run(tiny_run)) == ["fourier.csv", "modularity.json"]
    pd.testing.assert_frame_equal(tiny_run.read_table("fourier"), fourier)
    assert tiny_run.read_json("modularity") == partition
    assert (tiny_run.path / "summary.json").read_text() == summary_text
    assert backfill_run(tiny_run) == []  # nothing missing: nothing rewritten
    assert backfill_main([str(tiny_run.path)]) == 0
    assert "nothing missing" in capsys.readouterr().out


@pytest.mark.integration
def test_backfill_says_in_one_line_what_is_missing(tiny_run, tmp_path, capsys):
    assert backfill_main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == f"no complete runs under {tmp_path}"
    copy = tmp_path / "runs" / "debug" / "copy"
    copy.mkdir(parents=True)
    for file in tiny_run.path.iterdir():
        if file.is_file() and file.name not in ("fourier.csv", "modularity.json"):
            (copy / file.name).write_bytes(file.read_bytes())
    assert backfill_main([str(copy)]) == 1  # no checkpoints/ beside this copy's runs/
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint" in err[0] and "interbasis.training.modadd" in err[0]
    assert json.loads((copy / "modularity.json").read_text())["partitions"]
