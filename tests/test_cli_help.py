"""Every command-line entry point answers --help with its usage and exit status 0 (a "%" in a
help string once made `python -m interbasis.metrics.top_tokens --help` raise a TypeError)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

MODULES = ("interbasis.analysis.backfill", "interbasis.analysis.llc_complete", "interbasis.demo",
           "interbasis.estimate", "interbasis.figures.__main__", "interbasis.metrics.edge_curve",
           "interbasis.metrics.positions", "interbasis.metrics.top_tokens",
           "interbasis.results.__main__", "interbasis.site.__main__",
           "interbasis.sweeps.wandb_sweep", "interbasis.training.cache",
           "interbasis.training.modadd")


@pytest.mark.parametrize("name", MODULES)
def test_help_exits_cleanly(name, capsys):
    main = importlib.import_module(name).main
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_every_entry_point_is_listed():
    """A new module with ``def main(argv ...)`` joins MODULES (so its --help is checked too)."""
    import interbasis

    root = interbasis.__path__[0]
    found = {".".join(("interbasis", *path.relative_to(root).with_suffix("").parts))
             for path in Path(root).rglob("*.py") if "def main(argv" in path.read_text()}
    assert found == set(MODULES)
