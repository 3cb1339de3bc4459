"""The command lines a W&B agent would run for a sweep file, without a W&B server.

``wandb agent`` fills the sweep file's ``command`` with W&B's own macro expansion
(``wandb.sdk.launch.sweeps.utils``): ``${args_no_hyphens}`` becomes ``key=value`` per parameter,
which Hydra reads as overrides. This module uses the same functions, over every grid point (grid
sweeps) or over the values and both ends of each range (random and Bayesian sweeps, whose points
W&B samples), so a sweep file can be checked before it is launched:

    python -m interbasis.sweeps.wandb_sweep sweeps/modadd_seeds.yaml   # one command per line
"""

from __future__ import annotations

import argparse
import itertools
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

MODULE = "interbasis.run"
# Ranges whose ends W&B gives as written, and those whose min/max are natural logs of the ends.
_PLAIN_RANGES = ("uniform", "int_uniform", "q_uniform", "log_uniform_values",
                 "q_log_uniform_values", "inv_log_uniform_values")
_LOG_RANGES = ("log_uniform", "q_log_uniform", "inv_log_uniform")


def load_sweep(path: str | Path) -> dict[str, Any]:
    """A sweep file as a dict; ValueError naming the file when it is not a W&B sweep mapping."""
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(config, dict) or "parameters" not in config or "command" not in config:
        raise ValueError(f"{path}: a W&B sweep file needs 'parameters' and 'command'")
    return config


def parameter_points(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every grid point of a grid sweep; for random/bayes, every listed value and range end."""
    method = config.get("method", "grid")
    names, choices = [], []
    for name, spec in config["parameters"].items():
        names.append(name)
        choices.append(_choices(name, spec, grid=method == "grid"))
    return [dict(zip(names, point)) for point in itertools.product(*choices)]


def agent_command(config: dict[str, Any], point: dict[str, Any]) -> list[str]:
    """The argv ``wandb agent`` would start for one parameter point (as wandb_agent.py does)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils  # wandb only when asked

    template = sweep_utils.create_sweep_command(list(config["command"]))
    macros = sweep_utils.create_sweep_command_args(
        {"args": {name: {"value": value} for name, value in point.items()}})
    macros.update(interpreter=["python"], program=[config.get("program", "")],
                  env=["/usr/bin/env"])
    argv: list[str] = []
    for chunk in map(str, template):
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += macros.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv


def hydra_overrides(argv: list[str]) -> list[str]:
    """The Hydra overrides of an ``... -m interbasis.run <overrides>`` command line."""
    for index in range(len(argv) - 1):
        if argv[index] == "-m" and argv[index + 1] == MODULE:
            return argv[index + 2:]
    raise ValueError(f"not a `-m {MODULE}` command: {shlex.join(argv)}")


def commands(path: str | Path) -> list[list[str]]:
    """All command lines of the sweep file at ``path`` (see :func:`parameter_points`)."""
    config = load_sweep(path)
    return [agent_command(config, point) for point in parameter_points(config)]


def _choices(name: str, spec: Any, grid: bool) -> list[Any]:
    if not isinstance(spec, dict):
        raise ValueError(f"parameter {name!r}: expected a mapping, got {spec!r}")
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    distribution = spec.get("distribution")
    if grid:
        raise ValueError(f"parameter {name!r}: a grid sweep needs 'value' or 'values'")
    if distribution in _PLAIN_RANGES or (distribution is None and "min" in spec):
        return [spec["min"], spec["max"]]
    if distribution in _LOG_RANGES:
        return [math.exp(spec["min"]), math.exp(spec["max"])]
    raise ValueError(f"parameter {name!r}: distribution {distribution!r} is not supported here")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print the commands a W&B agent would run")
    parser.add_argument("sweep_file", nargs="+")
    args = parser.parse_args(argv)
    try:
        for path in args.sweep_file:
            for command in commands(path):
                print(shlex.join(command))
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
