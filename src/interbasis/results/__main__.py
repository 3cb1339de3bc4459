"""Commands on the results store.

    python -m interbasis.results import-wandb ENTITY/PROJECT   # W&B runs -> results/runs/
    python -m interbasis.results aggregate   # results/tables/*.csv from every complete run
    python -m interbasis.results status      # complete / failed / unfinished runs
    python -m interbasis.results compare modadd_paper   # LIB vs PCA, mean [min-max] over seeds
    python -m interbasis.results authors-import   # the LIB authors' numbers -> results/reference/

Each subcommand is registered by one small function (``register(subparsers)`` in its module) and
runs as ``args.run(args)``, so adding a command touches one line here.
"""

from __future__ import annotations

import argparse
import sys

from interbasis.results import aggregate, authors, compare, status, wandb_import

COMMANDS = (wandb_import.register, aggregate.register, status.register, compare.register,
            authors.register)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interbasis.results",
                                     description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
