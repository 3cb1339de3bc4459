"""Every command-line entry point answers --help with its usage and exit status 0 (a "%" in a
help string once made `python -m interbasis.metrics.top_tokens --help` raise a TypeError)."""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.unit

MODULES = ("interbasis.analysis.backfill", "interbasis.analysis.llc_complete", "interbasis.demo",
           "interbasis.estimate", "interbasis.figures.__main__", "interbasis.metrics.edge_curve",
           "interbasis.metrics.positions", "interbasis.metrics.top_tokens",
           "interbasis.results.__main__", "interbasis.site.__main__",
           "interbasis.sweeps.wandb_sweep", "interbasis.training.cache")


@pytest.mark.parametrize("name", MODULES)
def test_help_exits_cleanly(name, capsys):
    main = importlib.import_module(name).main
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out
