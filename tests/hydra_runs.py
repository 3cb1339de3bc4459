"""Test helpers (not a test module): compose configs and run them, in process or as the command.

``composed`` and ``run_in_process`` go through Hydra's compose API in this process (what most
tests need: seconds, not a Python start-up per run); ``run_cli`` starts ``python -m
interbasis.run`` for the tests where the process is the point (exit codes, stderr lines, signals,
launchers, the console script).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from interbasis.config import ConfigError, validate
from interbasis.results import load_runs
from interbasis.run import CONFIG_DIR, run_directory


def composed(overrides: list[str]) -> dict:
    """The resolved config of ``python -m interbasis.run <overrides>`` (not validated)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=False)
    return OmegaConf.to_container(cfg, resolve=True)


def group_options(group: str) -> list[str]:
    """The choices of a config group: the YAML files of ``conf/<group>/``."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


@contextlib.contextmanager
def results_at(results: Path, extra_env: dict | None = None) -> Iterator[None]:
    """INTERBASIS_RESULTS (and ``extra_env``) set while a config is composed and run."""
    saved = dict(os.environ)
    os.environ.update({"INTERBASIS_RESULTS": str(results), "WANDB_MODE": "disabled",
                       "WANDB_SILENT": "true", **(extra_env or {})})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(*overrides: str, results: Path, extra_env: dict | None = None
                   ) -> SimpleNamespace:
    """One run as ``python -m interbasis.run <overrides>`` does it (compose, validate, the run
    directory, :func:`interbasis.runner.execute`), in this process. Returns ``returncode`` (0, or
    2 for a config error), ``stdout`` (what the run printed), ``summary`` and ``run_dir``; any other
    failure raises, with its traceback."""
    from interbasis.runner import execute

    out = io.StringIO()
    with results_at(results, extra_env):
        resolved = composed(list(overrides))
        try:
            cfg = validate(resolved)
        except ConfigError as error:
            return SimpleNamespace(returncode=2, stdout="", stderr=str(error), summary=None,
                                   run_dir=None)
        run_dir = run_directory(cfg, list(overrides))
        with contextlib.redirect_stdout(out):
            summary = execute(cfg, resolved, run_dir, list(overrides))
    return SimpleNamespace(returncode=0, stdout=out.getvalue(), stderr="", summary=summary,
                           run_dir=run_dir.path)


def run_cli(*overrides: str, results, extra_env=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m interbasis.run <overrides>`` in a new process, results in ``results``."""
    env = {**os.environ, "INTERBASIS_RESULTS": str(results), "WANDB_MODE": "disabled",
           "WANDB_SILENT": "true", **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "interbasis.run", *overrides], env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_lib_and_pca(*overrides: str, results, extra_env=None) -> list:
    """The same run (in process) for ``method=lib`` and ``method=pca`` (the last override)."""
    return [run_in_process(*overrides, f"method={method}", results=results, extra_env=extra_env)
            for method in ("lib", "pca")]


def lib_and_pca_runs(results, outs) -> pd.DataFrame:
    """``load_runs`` of the two runs of :func:`run_lib_and_pca`, after checking both completed."""
    for out in outs:
        assert out.returncode == 0, out.stderr[-2000:]
        assert "run complete:" in out.stdout
    runs = load_runs(results / "runs")
    assert sorted(runs["method"]) == ["lib", "pca"]
    return runs
