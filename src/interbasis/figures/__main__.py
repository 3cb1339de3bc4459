"""Regenerate every paper figure whose results exist, from ``results/`` only.

    python -m interbasis.figures                    # all figures into paper_figures/
    python -m interbasis.figures --only 1 3         # just figures 1 and 3
    python -m interbasis.figures --results other/results --out my_figures

Prints one line per figure: the files written, or why it was skipped (which results are missing and
the command that writes them). Exits 1 only when a figure failed for another reason.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from interbasis.figures.data import MissingResults
from interbasis.figures.registry import FIGURES


def build(results: Path, out: Path, only: list[int] | None = None) -> dict[int, str]:
    """Draw the figures; returns figure number -> "written", "skipped" or "failed"."""
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
            paths = module.make(results, out)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interbasis.figures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="the results store (default: results)")
    parser.add_argument("--out", type=Path, default=Path("paper_figures"),
                        help="where figures go (default: paper_figures)")
    parser.add_argument("--only", type=int, nargs="+", metavar="N",
                        help="figure numbers to draw (default: all)")
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
    outcome = build(args.results, args.out, args.only)
    counts = {state: sum(v == state for v in outcome.values())
              for state in ("written", "skipped", "failed")}
    print(f"{counts['written']} figures written to {args.out}, {counts['skipped']} skipped, "
          f"{counts['failed']} failed ({time.perf_counter() - start:.1f} s)")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
