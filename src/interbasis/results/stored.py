"""A complete stored run's configuration, re-validated against this checkout.

Commands that add a measure to runs already in the store (``interbasis.metrics.edge_curve``,
``interbasis.metrics.positions``) rebuild the run's model and data from its ``config.yaml``; the
paths in that file name the checkout that made it, so they are replaced by this checkout's; so
is the start of ``data.path`` when it lies under the old checkout's root and is missing there (the
tiny GPT's KJV dump, written under the root by default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from interbasis.results.store import RunDirectory

if TYPE_CHECKING:
    from interbasis.basis.types import Graph


def checkout_paths() -> dict[str, str]:
    """This checkout's paths (conf/paths/default.yaml, INTERBASIS_RESULTS and INTERBASIS_RIB
    respected)."""
    from interbasis.run import CONFIG_DIR, PROJECT_ROOT

    results = os.environ.get("INTERBASIS_RESULTS", str(PROJECT_ROOT / "results"))
    rib = os.environ.get("INTERBASIS_RIB", str(PROJECT_ROOT.parent / "shared/data/rib_modadd"))
    assert (CONFIG_DIR / "paths").is_dir()
    return {"root": str(PROJECT_ROOT), "results": results, "runs": f"{results}/runs",
            "checkpoints": f"{results}/checkpoints", "cache": f"{results}/cache/checkpoints",
            "wandb": f"{results}/wandb", "rib_repo": rib}


def stored_run_config(path: str | Path) -> tuple[RunDirectory, Any]:
    """The run folder and its validated RunConfig (torch's threads set to the run's); ValueError
    when the folder holds no complete run."""
    import torch

    from interbasis.config import validate

    run = RunDirectory(Path(path))
    if not run.is_complete:
        raise ValueError(f"{path}: not a complete run")
    stored = yaml.safe_load((Path(path) / "config.yaml").read_text())
    paths = checkout_paths()
    data = stored.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data = {**data, "path": rerooted(data["path"], (stored.get("paths") or {}).get("root"),
                                         paths["root"])}
        stored = {**stored, "data": data}
    cfg = validate({**stored, "paths": paths})
    torch.set_num_threads(cfg.threads)
    return run, cfg


def rerooted(file: str, old_root: str | None, root: str) -> str:
    """``file`` moved from ``old_root`` to ``root`` when it lies under the old root and is not
    there; else unchanged."""
    if old_root is None or Path(file).exists():
        return file
    try:
        relative = Path(file).relative_to(old_root)
    except ValueError:
        return file
    return str(Path(root) / relative)


def stored_graph(path: str | Path) -> Graph:
    """The graph a run stored (its ``graph_<method>.pt``); one line when there is none."""
    from interbasis.basis.types import load_graph

    graphs = sorted(Path(path).glob("graph_*.pt"))
    if not graphs:
        raise ValueError(f"{path}: no graph file (graph_*.pt) is stored")
    return load_graph(graphs[0])
