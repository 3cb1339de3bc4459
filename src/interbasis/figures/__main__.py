"""Regenerate every paper figure whose results exist, from ``results/`` only.

    python -m interbasis.figures                    # all figures into paper_figures/
    python -m interbasis.figures --only 1 3         # just figures 1 and 3
    python -m interbasis.figures --results other/results --out my_figures
    python -m interbasis.figures --only 10 --experiments modadd_paper default --out mine

Each figure draws the paper experiments declared for it (``registry.EXPERIMENTS``), so runs of
your own never change a committed figure; ``--experiments`` draws those instead (a figure of one
experiment draws the first). Unchanged results redraw byte-identical files.

Prints one line per figure: the files written, or why it was skipped (which results are missing and
the command that writes them). Exits 1 only when a figure failed for another reason.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from pathlib import Path

from interbasis.figures.data import MissingResults, only_experiments
from interbasis.figures.registry import EXPERIMENTS, FIGURES


def build(results: Path, out: Path, only: list[int] | None = None,
          experiments: list[str] | None = None) -> dict[int, str]:
    """Draw the figures; returns figure number -> "written", "skipped" or "failed".

    Each figure reads the runs of its declared experiments, or of ``experiments`` when given.
    """
    outcome = {}
    for spec in FIGURES:
        if only and spec.number not in only:
            continue
        if spec.module is None:
            print(f"figure {spec.number} ({spec.title}): skipped: needs {spec.results}; "
                  f"{spec.command}")
            outcome[spec.number] = "skipped"
            continue
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"interbasis.figures.{spec.module}")
            chosen = tuple(experiments or EXPERIMENTS.get(spec.number, ()))
            with only_experiments(chosen or None):
                paths = module.make(results, out, **_experiment_arguments(module.make, chosen,
                                                                          experiments))
        except MissingResults as missing:
            print(f"figure {spec.number} ({spec.title}): skipped: {missing}")
            outcome[spec.number] = "skipped"
            continue
        except Exception as error:  # one bad figure must not stop the others
            print(f"figure {spec.number} ({spec.title}): failed: {type(error).__name__}: "
                  f"{' '.join(str(error).split())}", file=sys.stderr)
            outcome[spec.number] = "failed"
            continue
        names = ", ".join(str(path) for path in paths)
        print(f"figure {spec.number}: {names} ({time.perf_counter() - start:.1f} s)")
        outcome[spec.number] = "written"
    return outcome


def _experiment_arguments(make, chosen: tuple[str, ...], asked: list[str] | None) -> dict:
    """What to pass a figure's ``make`` when experiments were asked for: single-experiment
    figures take ``experiment``, multi-experiment ones ``experiments``; else their defaults."""
    parameters = inspect.signature(make).parameters
    if not asked:
        return {}
    if "experiments" in parameters:
        return {"experiments": list(chosen)}
    if "experiment" in parameters:
        return {"experiment": chosen[0]}
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interbasis.figures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="the results store (default: results)")
    parser.add_argument("--out", type=Path, default=Path("paper_figures"),
                        help="where figures go (default: paper_figures)")
    parser.add_argument("--only", type=int, nargs="+", metavar="N",
                        help="figure numbers to draw (default: all)")
    parser.add_argument("--experiments", nargs="+", metavar="NAME",
                        help="experiments to draw (default: each figure's paper experiments)")
    args = parser.parse_args(argv)
    known = {spec.number for spec in FIGURES}
    if args.only and not set(args.only) <= known:
        parser.error(f"unknown figure(s) {sorted(set(args.only) - known)}; "
                     f"figures are {sorted(known)}")
    if not args.results.is_dir():
        print(f"no results store at {args.results}; run from the repository root or pass "
              "--results", file=sys.stderr)
        return 1
    start = time.perf_counter()
    outcome = build(args.results, args.out, args.only, args.experiments)
    counts = {state: sum(v == state for v in outcome.values())
              for state in ("written", "skipped", "failed")}
    print(f"{counts['written']} figures written to {args.out}, {counts['skipped']} skipped, "
          f"{counts['failed']} failed ({time.perf_counter() - start:.1f} s)")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
