"""A run's resolved config as flat table columns (``config/<dotted.key>``) for :func:`load_runs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# libyaml's loader when present: it parses a run's config in well under a millisecond
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def config_columns(config_path: Path) -> dict[str, Any]:
    """A run's resolved config flattened to ``{"config/model.m": 1024, ...}`` ({} if unreadable);
    lists become their text (``"[0.001, 0.01]"``) so every column holds plain values."""
    try:
        settings = yaml.load(config_path.read_text(), Loader=_LOADER)
    except (OSError, yaml.YAMLError):
        return {}
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[f"config/{prefix}"] = str(node) if isinstance(node, list) else node

    walk(settings if isinstance(settings, dict) else {}, "")
    return flat
