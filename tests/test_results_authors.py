"""``results compare --reference authors``: the authors' published CSVs read into our layer
names, their features required computed on their curve, and printed beside our runs."""

from __future__ import annotations

import pandas as pd
import pytest

from authors_files import RIB_DIR, needs_authors
from interbasis.results import RunDirectory
from interbasis.results.__main__ import main
from interbasis.results.authors import AuthorsReferenceError, load_reference, side_by_side

PRE, MID, POST = "blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"


def test_load_reference_maps_layers_and_finds_k_required(reference):
    table = load_reference(reference).set_index(["method", "seed", "layer"])
    assert set(table.index.get_level_values("layer")) == {PRE, MID, POST}
    assert table.loc[("lib", 0, PRE), "k_required"] == 20
    assert table.loc[("lib", 1, PRE), "k_required"] == 32  # 21 is not in the schedule
    assert table.loc[("pca", 1, POST), "edges_required"] == 611
    assert table.loc[("lib", 0, MID), "rank"] == 129


def test_missing_reference_files_are_one_line(tmp_path):
    with pytest.raises(AuthorsReferenceError, match="no authors_edges_required.csv or "
                                                    "authors_node_ablation.csv in"):
        load_reference(tmp_path)


def test_compare_prints_ours_beside_theirs(reference, tmp_path, capsys):
    root = tmp_path / "runs"
    for experiment, scale in (("modadd_authors", 1), ("modadd_paper", 2)):
        for seed in (0, 1):
            for method in ("lib", "pca"):
                run = RunDirectory(root / experiment / f"method={method},seed={seed}")
                run.write_meta({"overrides": []})
                summary = {"method": method, "seed": seed, "model": "modadd",
                           f"rank/basis/{PRE}": 115, f"ablation/k_required@0.001/{PRE}": 9,
                           f"ablation/edges_required@0.001/{PRE}->{MID}": scale * (40 + seed),
                           "ablation/edges_required@0.001/total": 500}
                run.write_summary(summary)
    assert main(["compare", "modadd_authors", "--runs", str(root), "--reference", "authors",
                 "--reference-dir", str(reference), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "modadd_authors (ours: LIB 2, PCA 2 seeds) beside the authors'" in out
    assert "modadd_paper (ours: LIB 2, PCA 2 seeds)" in out
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| resid_pre->resid_mid")]
    # ours 40.5 [40-41] (their models) and 81 [80-82] (ours), theirs 80.5 [80-81] in both
    assert rows[0][1:3] == ["40.5 [40-41]", "80.5 [80-81]"]
    assert rows[1][1:3] == ["81 [80-82]", "80.5 [80-81]"]
    assert rows[0][3:5] == ["40.5 [40-41]", "90.5 [90-91]"]  # PCA: theirs + 10
    # their models: seed for seed, ours / theirs
    assert "| PCA | 1 | 41 / 91 | - / 71 | - / 611 |" in out


@needs_authors
def test_the_shared_reference_has_five_seeds_per_method():
    table = load_reference(RIB_DIR)
    assert table.groupby("method")["seed"].nunique().to_dict() == {"lib": 5, "pca": 5}
    lib0 = table.set_index(["method", "seed", "layer"]).loc[("lib", 0)]
    assert lib0["edges_required"].tolist() == [133, 82, 633]  # authors_edges_required.csv


def test_authors_import_copies_the_csvs_into_the_store(reference, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["authors-import", "--reference-dir", str(reference),
                 "--results", str(results)]) == 0
    dest = results / "reference" / "authors_modadd"
    assert f"wrote {dest}" in capsys.readouterr().out
    pd.testing.assert_frame_equal(load_reference(dest), load_reference(reference))
    assert "MIT licence" in (dest / "README.md").read_text()
    assert main(["authors-import", "--reference-dir", str(tmp_path / "none"),
                 "--results", str(results)]) == 1
    assert capsys.readouterr().out.startswith("error: no authors_edges_required.csv")


def test_paired_comparison_takes_their_numbers_over_our_seeds(reference):
    runs = pd.DataFrame([{"method": "lib", "seed": 1,
                          f"ablation/edges_required@0.001/{PRE}->{MID}": 79}])
    _, paired = side_by_side(runs, load_reference(reference), paired=True)
    _, unpaired = side_by_side(runs, load_reference(reference))
    assert paired.loc[0, "LIB ours"] == "79" and paired.loc[0, "LIB theirs"] == "81"
    assert unpaired.loc[0, "LIB theirs"] == "80.5 [80-81]"
