"""W&B runs -> the results store, on fakes shaped like the W&B API's answers (no network)."""

import argparse
import io
import json
import math
from pathlib import Path

import pytest

from interbasis.results import load_curves, load_runs
from interbasis.results.__main__ import main
from interbasis.results.wandb_import import cli, import_runs, register

CURVES_KEY = "curves/table"
TABLE_PATH = "media/table/curves/table_3_5f1c.table.json"
CURVES_TABLE = {  # what wandb.Table(dataframe=curves) writes to its .table.json
    "_type": "table",
    "columns": ["kind", "layer", "x", "score", "base_score", "score_name", "delta"],
    "data": [["node", "0", 1, 0.5, 1.0, "accuracy", None],
             ["node", "0", 2, 1.0, 1.0, "accuracy", None],
             ["edge", "0->output", 3, 0.999, 1.0, "accuracy", 0.001]],
    "ncols": 7, "nrows": 3,
}


class FakeFile:
    """``run.file(name)``: ``download`` writes the file under ``root`` and returns it opened."""

    def __init__(self, name: str, contents: dict):
        self.name, self.contents = name, contents

    def download(self, root: str = ".", replace: bool = False) -> io.TextIOWrapper:
        path = Path(root) / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.contents))
        return path.open()


class FakeSummary(dict):
    """The API's summary: a mapping that also keeps its JSON in ``_json_dict``."""

    @property
    def _json_dict(self):
        return dict(self)


class FakeRun:
    def __init__(self, run_id, name, state="finished", config=None, summary=None, group=None,
                 files=None):
        self.id, self.name, self.state, self.group = run_id, name, state, group
        self.config = config if config is not None else {}
        self.summary = FakeSummary(summary or {})
        self.created_at = "2026-11-22T06:22:46"
        self.path = ["ent", "proj", run_id]
        self._files = files or {}

    def file(self, name):
        return FakeFile(name, self._files[name])


def interbasis_run(run_id="ab12", method="lib", seed=0, **overrides) -> FakeRun:
    config = {"experiment_name": "modadd_paper", "seed": seed,
              "model": {"family": "modadd", "node_layers": ["0", "output"]},
              "method": {"name": method}, "_wandb": {"cli_version": "0.31.0"}}
    summary = {"method": method, "seed": seed, "model": "modadd",
               "ablation/edges_required@0.001/total": 590, "modularity/q": 0.31,
               "_runtime": 412.5, "_step": 3, "_timestamp": 1.7e9, "_wandb": {"runtime": 412},
               CURVES_KEY: {"_type": "table-file", "path": TABLE_PATH, "ncols": 7, "nrows": 3},
               "curves/node/0": {"_type": "plotly"}}
    args = {"config": config, "summary": summary, "files": {TABLE_PATH: CURVES_TABLE},
            "name": f"modadd_paper/method={method},seed={seed}", "group": "modadd_paper"}
    args.update(overrides)
    return FakeRun(run_id, **args)


def test_a_finished_run_becomes_a_complete_store_run(tmp_path):
    lines = []
    written = import_runs([interbasis_run()], tmp_path, log=lines.append)
    run_dir = tmp_path / "runs" / "modadd_paper" / "method=lib,seed=0"
    assert [w.path for w in written] == [run_dir]
    assert lines == [f"modadd_paper/method=lib,seed=0 (ab12): {run_dir}"]
    runs = load_runs(tmp_path / "runs")
    row = runs.iloc[0]
    assert (row["experiment"], row["run_name"], row["status"]) == (
        "modadd_paper", "method=lib,seed=0", "complete")
    assert row["ablation/edges_required@0.001/total"] == 590 and row["method"] == "lib"
    assert row["wandb_run_id"] == "ab12"
    assert not any(column.startswith(("_", "curves/")) for column in runs.columns)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["wandb_run_path"] == "ent/proj/ab12" and meta["imported_from"] == "wandb"
    curves = load_curves(run_dir)
    assert list(curves["layer"]) == ["0", "0", "0->output"]
    assert list(curves["x"]) == [1, 2, 3] and math.isnan(curves["delta"].iloc[0])
    assert "_wandb" not in (run_dir / "config.yaml").read_text()


def test_runs_that_are_not_finished_or_not_ours_are_skipped_with_a_reason(tmp_path):
    lines = []
    runs = [interbasis_run("r1", state="running"),
            FakeRun("r2", "someone-elses-run", config={"lr": 1}, summary={"loss": 0.1}),
            interbasis_run("r3", config={"seed": 1, "model": {}, "method": {"name": "pca"}},
                           name="no-prefix", group=None)]
    assert import_runs(runs, tmp_path, log=lines.append) == []
    assert lines[0].endswith("skipped: state is 'running', not 'finished'")
    assert "not an interbasis run" in lines[1]
    assert "no experiment_name" in lines[2]
    assert load_runs(tmp_path / "runs").empty


def test_name_falls_back_to_method_and_seed_and_local_runs_are_kept(tmp_path):
    run = interbasis_run("c3", method="pca", seed=4, name="renamed-in-the-ui")
    import_runs([run], tmp_path, log=lambda line: None)
    assert (tmp_path / "runs/modadd_paper/method=pca,seed=4/summary.json").is_file()
    lines = []
    assert import_runs([run], tmp_path, log=lines.append) == []
    assert "already holds a complete run" in lines[0]
    assert len(import_runs([run], tmp_path, force=True, log=lines.append)) == 1


def test_a_run_without_a_curves_table_still_imports(tmp_path):
    run = interbasis_run()
    del run.summary[CURVES_KEY]
    import_runs([run], tmp_path, log=lambda line: None)
    run_dir = tmp_path / "runs/modadd_paper/method=lib,seed=0"
    assert (run_dir / "summary.json").is_file() and not (run_dir / "curves.csv").exists()


def test_the_cli_lists_runs_through_the_api_and_reports_failures_in_one_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["import-wandb", "ent/proj", "--results", str(tmp_path)])
    assert cli(args, fetch=lambda path: [interbasis_run(), interbasis_run("x", state="crashed")]
               ) == 0
    assert "imported 1 of 2 W&B runs" in capsys.readouterr().out

    def offline(path):
        raise ConnectionError("Max retries exceeded with url:\n /graphql")

    assert cli(args, fetch=offline) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("cannot list W&B runs of ent/proj")


def test_python_m_interbasis_results_has_the_import_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "import-wandb" in capsys.readouterr().out
    assert main(["import-wandb", "no-slash"]) == 2
    assert "ENTITY/PROJECT" in capsys.readouterr().err
