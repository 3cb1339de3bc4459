"""Command-line overrides checked before Hydra sees them: one line for a mistyped key or choice.

Hydra answers ``methd=lib`` with advice to write ``+methd=lib`` (which then fails in the schema)
and ``method=foo`` with a multi-line list. :func:`check_overrides` composes the config the command
asks for (its group choices only, nothing resolved) and answers instead::

    config error: unknown key 'methd'; did you mean 'method'?
    config error: unknown key 'model.d_modle'; did you mean 'model.d_model'?
    config error: method=foo: no such method; choose one of: lib, neuron, pca

for plain runs and multiruns alike (every value of a sweep ``method=lib,foo`` is checked).
Overrides that add or delete keys on purpose (``+key``, ``++key``, ``~key``) and Hydra's own
(``hydra.*``, ``hydra/launcher=...``) are left to Hydra.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any


def group_options(config_dir: Path) -> dict[str, list[str]]:
    """Config group -> its choices (the YAML files of ``conf/<group>/``), Hydra's groups aside."""
    return {folder.name: sorted(path.stem for path in folder.glob("*.yaml"))
            for folder in sorted(config_dir.iterdir())
            if folder.is_dir() and folder.name != "hydra"}


def check_overrides(args: list[str], config_dir: Path, config_name: str = "config"
                    ) -> str | None:
    """The one-line error for the first bad override in ``args`` (a command line), else None.

    Anything this cannot parse is left for Hydra to report.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    texts = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(texts)
    except HydraException:
        return None
    groups = group_options(config_dir)
    chosen: list[str] = []
    keys = []
    for override in overrides:
        key = override.key_or_group
        if (key == "hydra" or key.startswith(("hydra.", "hydra/")) or override.package
                or override.is_add() or override.is_force_add() or override.is_delete()):
            continue
        if key not in groups:
            keys.append(key)
            continue
        values = ([str(v) for v in override.sweep_string_iterator()]
                  if override.is_sweep_override() else [str(override.value())])
        for value in values:
            if value not in groups[key] and value != "null":
                return (f"config error: {key}={value}: no such {key}; choose one of: "
                        f"{', '.join(groups[key])}")
        chosen.append(f"{key}={values[0]}")
    if not keys:
        return None
    container = _composed(config_dir, config_name, chosen)
    if container is None:
        return None
    for key in keys:
        problem = _unknown_key(container, key, groups)
        if problem:
            return problem
    return None


def _composed(config_dir: Path, config_name: str, overrides: list[str]) -> dict | None:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from interbasis.config import register_defaults

    register_defaults()  # conf/config.yaml composes the schema's defaults first
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
    except HydraException:
        return None
    container = OmegaConf.to_container(cfg, resolve=False)
    return container if isinstance(container, dict) else None


def _unknown_key(container: dict, key: str, groups: dict[str, list[str]]) -> str | None:
    node: Any = container
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        prefix = ".".join(parts[:depth])
        if not isinstance(node, dict):
            return f"config error: unknown key {key!r}: {prefix} is not a section"
        candidates = list(dict.fromkeys(list(node) + (list(groups) if depth == 0 else [])))
        close = difflib.get_close_matches(part, candidates, n=3, cutoff=0.6)
        rest = parts[depth + 1:]
        full = [".".join([*parts[:depth], name, *rest]) if rest and _has(node.get(name), rest)
                else ".".join([*parts[:depth], name]) for name in close]
        if full:
            hint = "did you mean " + " or ".join(repr(name) for name in full) + "?"
        else:
            where = f"{prefix} has" if prefix else "the config has"
            hint = f"{where}: {', '.join(sorted(candidates))}"
        return f"config error: unknown key {key!r}; {hint}"
    return None


def _has(node: Any, parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
