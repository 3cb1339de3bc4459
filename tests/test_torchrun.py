"""``torchrun --nproc-per-node 2 -m interbasis.run`` (Gloo, CPU): the run's graph is the
single-process run's, rank 0 alone writes the run directory, and the build's stage folder is gone
at the end. Slow (two runs, three processes: ~1 minute on 2 shared cores)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interbasis.basis import load_graph
from test_distributed import assert_close

pytestmark = pytest.mark.slow
TEXT = ("In the beginning was the word, and the word was with the text; and the text was "
        "short.\n") * 40


def _run(prefix: list[str], results: Path, text: Path, *overrides: str) -> str:
    env = {**os.environ, "INTERBASIS_RESULTS": str(results), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*prefix, "-m", "interbasis.run", "family=tiny_gpt",
                           "debug=tiny",
                           f"data.path={text}", *overrides], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_dirs(experiment: Path) -> list[Path]:
    """The run directories (not the lock files beside them)."""
    return [path for path in experiment.iterdir() if path.is_dir()]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_ranks_give_the_single_process_run(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    # debug runs are named by their overrides alone: two stores, one model cache
    cache = f"paths.cache={tmp_path / 'cache'}"
    _run([sys.executable], tmp_path / "single", text, cache)  # trains the cached model
    out = _run(["torchrun", "--nproc-per-node", "2"], tmp_path / "two", text, cache)
    assert "basis build on 2 ranks" in out and out.count("run complete:") == 1
    (run,) = run_dirs(tmp_path / "two" / "runs" / "debug")
    assert not (run / "build").exists()
    (reference,) = run_dirs(tmp_path / "single" / "runs" / "debug")
    graph = load_graph(run / "graph_lib.pt")
    assert graph.settings["ranks"] == 2
    assert_close(graph, load_graph(reference / "graph_lib.pt"))
    # the output features split across the ranks instead of the samples: the same graph
    out = _run(["torchrun", "--nproc-per-node", "2"], tmp_path / "features", text, cache,
               "method.rank_split=features")
    assert "output features split" in out
    (run,) = run_dirs(tmp_path / "features" / "runs" / "debug")
    graph = load_graph(run / "graph_lib.pt")
    assert graph.settings["split"] == "features"
    assert_close(graph, load_graph(reference / "graph_lib.pt"))
