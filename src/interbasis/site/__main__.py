"""``python -m interbasis.site``: write the static results browser to ``results/site/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interbasis.site.build import build_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interbasis.site", description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="the results store to read (default: results)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the site (default: <results>/site)")
    args = parser.parse_args(argv)
    try:
        report = build_site(args.results, args.out)
    except FileNotFoundError as error:
        print(f"site: {error}", file=sys.stderr)
        return 1
    for note in sorted(set(report.notes)):
        print(f"note: {note}")
    print(f"site: {report.pages} pages and {report.graphs} graph files in {report.out} "
          f"({report.seconds:.1f} s); open {report.out / 'index.html'} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
