"""Where a run's trained model lives: the committed paper checkpoints, or the throwaway cache.

Two roots (``conf/paths/default.yaml``):

- ``paths.checkpoints`` (``results/checkpoints/<family>/``): the paper's trained models, committed
  and listed with their checksums in ``MANIFEST.json`` there. Runs only ever read them.
- ``paths.cache`` (``results/cache/checkpoints/<family>/``, git-ignored): every other model
  (``debug=*`` runs, new configs, longer trainings), trained and resumed there.

:func:`model_cache_dir` picks the folder for one run: the committed one when it holds the run's
entry at exactly the step (epoch) asked for, so the README's paper runs load without training;
otherwise the cache, where a committed entry that is to be trained further is first copied, so the
committed file never changes (one already past the run's target is not copied: the run trains
afresh in the cache).

    python -m interbasis.training.cache manifest   # rewrite MANIFEST.json after adding models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from interbasis.results.store import atomic_write_text, file_mode
from interbasis.training.checkpoint import checkpoint_path, load_checkpoint

MANIFEST = "MANIFEST.json"
DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "results" / "checkpoints"


def model_cache_dir(paths: Any, family: str, seed: int, trajectory: dict, target: int) -> Path:
    """The folder (``.../<family>``) whose entry this run reads, and writes if it trains.

    A committed entry at the target is read in place; one short of it is copied into the cache
    and resumed there; one past the target (``train.steps=30000`` of a 60,000-step paper model) is
    left alone and the run trains afresh in the cache, since a model cannot be rewound (a
    committed model at one target and a cached one at another then share the file name, in two
    folders)."""
    name = checkpoint_path(".", family, seed, trajectory).name
    committed = Path(paths.checkpoints) / family
    cache = Path(paths.cache) / family
    if (cache / name).exists() or not (committed / name).is_file():
        return cache
    listed = read_manifest(Path(paths.checkpoints)).get(f"{family}/{name}")
    if listed is not None and listed.get("at") == target:
        return committed
    if _progress(listed, committed / name) > target:
        return cache  # trained anew there: the committed model is past the run's target
    _copy(committed / name, cache / name)  # to be resumed (or a stray file): never in place
    return cache


def _progress(listed: dict | None, path: Path) -> int:
    """The step (or epoch) of a committed checkpoint: its manifest entry's, else the file's (a
    stray one the manifest does not list)."""
    if listed is not None and "at" in listed:
        return int(listed["at"])
    checkpoint = load_checkpoint(path)
    return int(checkpoint["epoch"] if "epoch" in checkpoint else checkpoint["step"])


def read_manifest(root: Path = DEFAULT_ROOT) -> dict[str, dict]:
    """``{"<family>/<file>": {"progress", "at", "sha256"}}``; empty when there is none."""
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return {}


def committed_checkpoints(root: Path = DEFAULT_ROOT, family: str | None = None) -> list[Path]:
    """The committed checkpoint files the manifest lists (of one family, or all)."""
    return [root / name for name in sorted(read_manifest(root))
            if family is None or name.startswith(f"{family}/")]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: Path = DEFAULT_ROOT) -> Path:
    """List every ``<family>/*.pt`` under ``root`` with its progress and checksum."""
    files = {}
    for path in sorted(root.glob("*/*.pt")):
        checkpoint = load_checkpoint(path)
        # what "trained to the target" means: epochs for a family that counts them, else steps
        progress = "epoch" if "epoch" in checkpoint else "step"
        files[f"{path.parent.name}/{path.name}"] = {"progress": progress,
                                                    "at": int(checkpoint[progress]),
                                                    "sha256": sha256(path)}
    target = root / MANIFEST
    atomic_write_text(target, json.dumps({"files": files}, indent=1) + "\n")
    return target


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with open(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        Path(tmp).chmod(file_mode())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interbasis.training.cache",
                                     description="the committed checkpoints' manifest")
    parser.add_argument("command", choices=["manifest"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    path = write_manifest(args.root)
    print(f"{path}: {len(read_manifest(args.root))} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
